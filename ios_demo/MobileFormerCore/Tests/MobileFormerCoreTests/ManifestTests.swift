import Foundation
import XCTest
@testable import MobileFormerCore

final class ManifestTests: XCTestCase {
    private func manifest(_ input: String, version: Int = 2) -> Data {
        """
        {"schema_version": \(version), "model": "mobile_former_26m", "variant": "26m",
         "target": "coreml", "precision": "fp32", "model_file": "model.mlpackage",
         "labels_file": "labels.txt", "num_classes": 1000, "synthetic_weights": true,
         "input": \(input),
         "output": {"name": "logits", "shape": [1, 1000], "dtype": "float32", "layout": null,
                    "scale": null, "zero_point": null},
         "preprocessing": {"crop_pct": 0.875, "interpolation": "bilinear", "layout": "NCHW",
                           "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                           "pixel_scale": 0.00392156862745098, "resize": 256, "resolution": 224},
         "extra": {"coreml": {"input_kind": "tensor"}}}
        """.data(using: .utf8)!
    }

    func testParsesAFloatNchwManifest() throws {
        let m = try ModelManifest.parse(manifest(
            #"{"name": "input", "shape": [1, 3, 224, 224], "dtype": "float32", "layout": "NCHW", "scale": null, "zero_point": null}"#))
        XCTAssertEqual(m.layout, "NCHW")
        XCTAssertEqual(m.input.shape, [1, 3, 224, 224])
        XCTAssertNil(m.input.scale)
        XCTAssertFalse(m.input.quantized)
        XCTAssertEqual(m.preprocessing.resize, 256)
        XCTAssertEqual(Float(m.preprocessing.pixelScale), Float(1.0 / 255.0))
        XCTAssertTrue(m.syntheticWeights)
    }

    func testReadsInt8ScaleAndZeroPoint() throws {
        let m = try ModelManifest.parse(manifest(
            #"{"name": "input", "shape": [1, 224, 224, 3], "dtype": "int8", "layout": "NHWC", "scale": 0.0186, "zero_point": -14}"#))
        XCTAssertEqual(m.layout, "NHWC")
        XCTAssertTrue(m.input.quantized)
        XCTAssertEqual(m.input.scale, 0.0186)
        XCTAssertEqual(m.input.zeroPoint, -14)
    }

    func testRefusesAnotherSchemaVersionAndABatch() {
        let input = #"{"name": "input", "shape": [1, 3, 224, 224], "dtype": "float32"}"#
        XCTAssertThrowsError(try ModelManifest.parse(manifest(input, version: 1)))
        XCTAssertThrowsError(try ModelManifest.parse(manifest(
            #"{"name": "input", "shape": [4, 3, 224, 224], "dtype": "float32"}"#)))
    }

    func testLabelsSkipBlankLines() {
        XCTAssertEqual(parseLabels("tench\ngoldfish\n\n"), ["tench", "goldfish"])
    }
}
