import Foundation

/// One tensor of the manifest (mfdeploy.artifact.TensorSpec). scale / zeroPoint: int8 only.
public struct TensorSpec: Codable, Equatable {
    public let name: String
    public let shape: [Int]
    public let dtype: String
    public let layout: String?
    public let scale: Double?
    public let zeroPoint: Int?

    enum CodingKeys: String, CodingKey {
        case name, shape, dtype, layout, scale
        case zeroPoint = "zero_point"
    }

    public var quantized: Bool { scale != nil && dtype != "float32" }
}

/// The manifest's `preprocessing` (mfdeploy.preprocessing.Preprocessing.to_dict).
public struct PreprocessingSpec: Codable, Equatable {
    public let resolution: Int
    public let resize: Int
    public let mean: [Double]
    public let std: [Double]
    public let pixelScale: Double
    public let interpolation: String

    enum CodingKeys: String, CodingKey {
        case resolution, resize, mean, std, interpolation
        case pixelScale = "pixel_scale"
    }

    public init(resolution: Int, resize: Int, mean: [Double], std: [Double], pixelScale: Double,
                interpolation: String = "bilinear") {
        self.resolution = resolution
        self.resize = resize
        self.mean = mean
        self.std = std
        self.pixelScale = pixelScale
        self.interpolation = interpolation
    }
}

public enum ManifestError: Error, CustomStringConvertible {
    case invalid(String)
    public var description: String {
        switch self { case .invalid(let message): return message }
    }
}

/// manifest.json of a bundled artifact: everything the app needs to feed the model.
public struct ModelManifest: Codable {
    public static let schemaVersion = 2

    public let schemaVersion: Int
    public let model: String
    public let variant: String?
    public let target: String
    public let precision: String
    public let modelFile: String
    public let labelsFile: String
    public let numClasses: Int
    public let input: TensorSpec
    public let output: TensorSpec
    public let preprocessing: PreprocessingSpec
    public let syntheticWeights: Bool
    /// sha256 of the model file, from the export (identifies the bundled model).
    public let artifactSha256: String?

    enum CodingKeys: String, CodingKey {
        case model, variant, target, precision, input, output, preprocessing
        case schemaVersion = "schema_version"
        case modelFile = "model_file"
        case labelsFile = "labels_file"
        case numClasses = "num_classes"
        case syntheticWeights = "synthetic_weights"
        case artifactSha256 = "artifact_sha256"
    }

    /// NCHW or NHWC: the layout the model's input tensor takes.
    public var layout: String { input.layout ?? "NCHW" }

    public static func parse(_ data: Data) throws -> ModelManifest {
        let manifest = try JSONDecoder().decode(ModelManifest.self, from: data)
        guard manifest.schemaVersion == schemaVersion else {
            throw ManifestError.invalid("manifest schema version \(manifest.schemaVersion) is not supported")
        }
        guard manifest.input.shape.count == 4, manifest.input.shape[0] == 1 else {
            throw ManifestError.invalid("the app feeds one image; input shape is \(manifest.input.shape)")
        }
        guard manifest.layout == "NCHW" || manifest.layout == "NHWC" else {
            throw ManifestError.invalid("unknown input layout \(manifest.layout)")
        }
        return manifest
    }
}

/// labels.txt: one class name per line, in index order.
public func parseLabels(_ text: String) -> [String] {
    text.split(whereSeparator: \.isNewline)
        .map { $0.trimmingCharacters(in: .whitespaces) }
        .filter { !$0.isEmpty }
}
