import CoreGraphics
import CoreML
import Foundation
import MobileFormerCore
import UIKit

/// Which Core ML compute units to use (MLModelConfiguration.computeUnits).
enum ComputeChoice: String, CaseIterable, Identifiable {
    case cpuOnly = "CPU only"
    case cpuAndGPU = "CPU + GPU"
    case all = "All (incl. Neural Engine)"

    var id: String { rawValue }
    var units: MLComputeUnits {
        switch self {
        case .cpuOnly: return .cpuOnly
        case .cpuAndGPU: return .cpuAndGPU
        case .all: return .all
        }
    }
}

struct Classification {
    let top: [Prediction]
    let medianMs: Double
    let runs: Int
}

enum ClassifierError: Error, CustomStringConvertible {
    case missing(String)
    case mismatch(String)
    var description: String {
        switch self {
        case .missing(let what): return "\(what) is not bundled: run `mfdeploy bundle --app ios ARTIFACT`"
        case .mismatch(let what): return what
        }
    }
}

/// The bundled model (the app's "mfdeploy" folder, written by `mfdeploy bundle --app ios`)
/// on Core ML. Input size, layout, mean / std and quantisation come from manifest.json.
final class Classifier {
    let manifest: ModelManifest
    let labels: [String]
    let computeUnits: ComputeChoice
    private let model: MLModel

    static func resource(_ name: String) throws -> URL {
        guard let dir = Bundle.main.resourceURL?.appendingPathComponent(BundleContract.resourceDir),
              FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path) else {
            throw ClassifierError.missing(name)
        }
        return dir.appendingPathComponent(name)
    }

    /// The compiled model, cached per bundled model sha256 (compiling takes a few seconds).
    private static func compiledModel(_ manifest: ModelManifest) throws -> URL {
        let package = try resource(BundleContract.model)
        let stamp = manifest.artifactSha256.map { String($0.prefix(16)) } ?? "unknown"
        let cache = FileManager.default.urls(for: .cachesDirectory, in: .userDomainMask)[0]
            .appendingPathComponent("model-\(stamp).mlmodelc")
        if FileManager.default.fileExists(atPath: cache.path) { return cache }
        let compiled = try MLModel.compileModel(at: package)
        try? FileManager.default.removeItem(at: cache)
        try FileManager.default.moveItem(at: compiled, to: cache)
        return cache
    }

    init(computeUnits: ComputeChoice = .cpuOnly) throws {
        manifest = try ModelManifest.parse(Data(contentsOf: Classifier.resource(BundleContract.manifest)))
        guard manifest.target == BundleContract.target else {
            throw ClassifierError.mismatch("bundled model is \(manifest.target), the app runs \(BundleContract.target)")
        }
        labels = parseLabels(try String(contentsOf: Classifier.resource(BundleContract.labels), encoding: .utf8))
        self.computeUnits = computeUnits
        let config = MLModelConfiguration()
        config.computeUnits = computeUnits.units
        model = try MLModel(contentsOf: Classifier.compiledModel(manifest), configuration: config)
        let description = model.modelDescription.inputDescriptionsByName[manifest.input.name]
        let shape = description?.multiArrayConstraint?.shape.map(\.intValue) ?? []
        guard shape == manifest.input.shape else {
            throw ClassifierError.mismatch("model input \(shape), manifest \(manifest.input.shape)")
        }
    }

    static func loadSample() throws -> UIImage {
        let url = try resource(BundleContract.sampleImage)
        guard let image = UIImage(contentsOfFile: url.path) else {
            throw ClassifierError.missing(BundleContract.sampleImage)
        }
        return image
    }

    /// Image -> model input: short side to the manifest's `resize` (skipped when the image
    /// already has that size, as the bundled sample does), centre crop, normalise.
    func preprocess(_ image: UIImage) -> [Float] {
        let spec = manifest.preprocessing
        let upright = Pixels.upright(image)
        let size = Preprocessor.resizedSize(width: upright.width, height: upright.height, resize: spec.resize)
        let rgba = Pixels.rgba(upright, width: size.width, height: size.height)
        return Preprocessor.normalize(rgba: rgba, width: size.width, height: size.height,
                                      spec: spec, layout: manifest.layout)
    }

    /// One prediction on a preprocessed tensor: float logits.
    func run(_ x: [Float]) throws -> [Float] {
        let input = manifest.input
        let shape = input.shape.map { NSNumber(value: $0) }
        let array: MLMultiArray
        if input.quantized, let scale = input.scale {
            array = try MLMultiArray(shape: shape, dataType: .int32)
            let q = Preprocessor.quantize(x, scale: scale, zeroPoint: input.zeroPoint ?? 0, min: -128, max: 127)
            let p = array.dataPointer.bindMemory(to: Int32.self, capacity: q.count)
            for (i, v) in q.enumerated() { p[i] = Int32(v) }
        } else {
            array = try MLMultiArray(shape: shape, dataType: .float32)
            let p = array.dataPointer.bindMemory(to: Float.self, capacity: x.count)
            x.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: x.count) }
        }
        let features = try MLDictionaryFeatureProvider(dictionary: [input.name: MLFeatureValue(multiArray: array)])
        let result = try model.prediction(from: features)
        guard let out = result.featureValue(for: manifest.output.name)?.multiArrayValue else {
            throw ClassifierError.mismatch("no output \(manifest.output.name)")
        }
        var logits = (0..<out.count).map { out[$0].floatValue }
        if let scale = manifest.output.scale, manifest.output.quantized {
            logits = Preprocessor.dequantize(logits.map { Int($0) }, scale: scale,
                                             zeroPoint: manifest.output.zeroPoint ?? 0)
        }
        return logits
    }

    /// Preprocess, one warm-up prediction, then `runs` timed ones; top-5 of the last.
    func classify(_ image: UIImage, runs: Int = 10) throws -> Classification {
        let x = preprocess(image)
        _ = try run(x)
        var times = [Double]()
        var logits = [Float]()
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            logits = try run(x)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        }
        return Classification(top: TopK.topK(logits, k: 5, labels: labels),
                              medianMs: TopK.median(times), runs: runs)
    }
}

/// UIImage -> RGBA8 pixels in sRGB, via Core Graphics.
enum Pixels {
    /// The image redrawn with orientation .up (camera photos carry a rotation flag).
    static func upright(_ image: UIImage) -> CGImage {
        if image.imageOrientation == .up, let cg = image.cgImage { return cg }
        let format = UIGraphicsImageRendererFormat()
        format.scale = 1
        let drawn = UIGraphicsImageRenderer(size: image.size, format: format).image { _ in
            image.draw(in: CGRect(origin: .zero, size: image.size))
        }
        return drawn.cgImage!
    }

    /// Pixels at width x height: drawn 1:1 when the size matches (the bundled sample: no
    /// resampling, exact values); otherwise scaled with Core Graphics' high-quality filter,
    /// which is not PIL's bilinear (see docs/apps.md).
    static func rgba(_ image: CGImage, width: Int, height: Int) -> [UInt8] {
        var pixels = [UInt8](repeating: 0, count: width * height * 4)
        let space = CGColorSpace(name: CGColorSpace.sRGB)!
        pixels.withUnsafeMutableBytes { buffer in
            let context = CGContext(data: buffer.baseAddress, width: width, height: height,
                                    bitsPerComponent: 8, bytesPerRow: width * 4, space: space,
                                    bitmapInfo: CGImageAlphaInfo.premultipliedLast.rawValue)!
            let exact = image.width == width && image.height == height
            context.interpolationQuality = exact ? .none : .high
            context.draw(image, in: CGRect(x: 0, y: 0, width: width, height: height))
        }
        return pixels
    }
}
