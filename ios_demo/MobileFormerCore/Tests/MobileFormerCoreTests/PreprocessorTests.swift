import XCTest
@testable import MobileFormerCore

final class PreprocessorTests: XCTestCase {
    let spec = PreprocessingSpec(resolution: 2, resize: 3, mean: [0.485, 0.456, 0.406],
                                 std: [0.229, 0.224, 0.225], pixelScale: 1.0 / 255.0)

    func testResizedSizeRoundsLikePython() {
        XCTAssertTrue(Preprocessor.resizedSize(width: 451, height: 300, resize: 256) == (385, 256))
        XCTAssertTrue(Preprocessor.resizedSize(width: 300, height: 451, resize: 256) == (256, 385))
        // Python rounds halves to even: round(4.5) = 4, round(5.5) = 6
        XCTAssertTrue(Preprocessor.resizedSize(width: 6, height: 4, resize: 3) == (4, 3))
        XCTAssertTrue(Preprocessor.resizedSize(width: 11, height: 6, resize: 3) == (6, 3))
    }

    func testCropOriginRoundsDown() {
        XCTAssertTrue(Preprocessor.cropOrigin(width: 385, height: 256, resolution: 224) == (80, 16))
    }

    func testNormalizesTheCentreCropInBothLayouts() {
        var rgba = [UInt8]()
        for i in 0..<9 { rgba += [UInt8(i * 10), UInt8(255 - i), UInt8(i), 255] }
        let nchw = Preprocessor.normalize(rgba: rgba, width: 3, height: 3, spec: spec, layout: "NCHW")
        let nhwc = Preprocessor.normalize(rgba: rgba, width: 3, height: 3, spec: spec, layout: "NHWC")
        for (i, p) in [0, 1, 3, 4].enumerated() {
            for c in 0..<3 {
                let v = (Float(rgba[p * 4 + c]) * Float(spec.pixelScale) - Float(spec.mean[c])) / Float(spec.std[c])
                XCTAssertEqual(nchw[c * 4 + i], v)
                XCTAssertEqual(nhwc[i * 3 + c], v)
            }
        }
        // Black and white through ImageNet mean / std (values from numpy float32).
        let bw = Preprocessor.normalize(rgba: [0, 0, 0, 255, 255, 255, 255, 255, 0, 0, 0, 255, 255, 255, 255, 255],
                                        width: 2, height: 2, spec: spec, layout: "NCHW")
        XCTAssertEqual(bw[0], -2.117904, accuracy: 1e-6)
        XCTAssertEqual(bw[1], 2.2489083, accuracy: 1e-6)
        XCTAssertEqual(bw[11], 2.64, accuracy: 1e-6)
    }

    func testQuantizesHalfToEvenAndClips() {
        XCTAssertEqual(Preprocessor.quantize([0.5, 1.5, -0.5, 200, -200], scale: 1, zeroPoint: 0, min: -128, max: 127),
                       [0, 2, 0, 127, -128])
        XCTAssertEqual(Preprocessor.dequantize([-14, 0], scale: 0.5, zeroPoint: -14), [0, 7])
    }
}
