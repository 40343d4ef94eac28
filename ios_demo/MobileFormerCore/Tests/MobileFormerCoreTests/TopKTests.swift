import Foundation
import XCTest
@testable import MobileFormerCore

final class TopKTests: XCTestCase {
    func testTopKIsSortedByScoreTiesToTheLowerIndex() {
        let top = TopK.topK([1, 3, 2, 3, -1, 0], k: 3, labels: ["a", "b", "c", "d", "e", "f"])
        XCTAssertEqual(top.map(\.index), [1, 3, 2])
        XCTAssertEqual(top[0].label, "b")
        XCTAssertEqual(TopK.softmax([1000, 1000])[0], 0.5, accuracy: 1e-7)
    }

    func testMedian() {
        XCTAssertEqual(TopK.median([3, 1, 2]), 2)
        XCTAssertEqual(TopK.median([4, 1, 2, 3]), 2.5)
    }

    func testSha256KnownVectors() {
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex([]),
                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        // [1.0, -2.5] as float32 little-endian, as hashlib.sha256(np.array(..., '<f4').tobytes())
        XCTAssertEqual(GoldenCheck.sha256([1.0, -2.5]),
                       "48943f7a0ea247f8e3c9386d0c5822fe181d323a9289980426638cc4e72a43e1")
    }

    func testGoldenCheckAcceptsNearTiesAndRejectsStrangers() throws {
        let json = """
        {"sample_image": "sample.png", "sample_size": [2, 2], "logit_tolerance": 0.01,
         "input": {"name": "input", "layout": "NCHW", "shape": [1, 2], "sha256": "x", "sum": 0,
                   "tolerance": 1e-6, "samples": []},
         "top_k": [{"index": 0, "label": "a", "logit": 0, "score": 0.5},
                   {"index": 1, "label": "b", "logit": 0, "score": 0.5}]}
        """
        let golden = try Golden.parse(json.data(using: .utf8)!)
        XCTAssertEqual(GoldenCheck.compareTopK(golden, [0.005, 0, -20]), [])
        XCTAssertFalse(GoldenCheck.compareTopK(golden, [0, -5, 1]).isEmpty)  // class 2 intrudes
        XCTAssertFalse(GoldenCheck.compareTopK(golden, [0.05, 0, -20]).isEmpty)  // logit off
    }
}
