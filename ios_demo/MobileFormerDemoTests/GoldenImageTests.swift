import MobileFormerCore
import XCTest
@testable import MobileFormerDemo

/// On a simulator or device: the bundled model on the bundled sample photo must reproduce the
/// golden file `mfdeploy bundle --app ios` wrote (tensor checksum and values, top-5 within
/// tolerance). CPU only, the compute units the golden's tolerance is set for.
final class GoldenImageTests: XCTestCase {
    private func golden() throws -> Golden {
        try Golden.parse(Data(contentsOf: Classifier.resource(BundleContract.golden)))
    }

    func testPreprocessedSampleMatchesTheGolden() throws {
        let golden = try golden()
        let classifier = try Classifier(computeUnits: .cpuOnly)
        let sample = try Classifier.loadSample()
        XCTAssertEqual(golden.sampleSize, [Int(sample.size.width * sample.scale), Int(sample.size.height * sample.scale)])
        let failures = GoldenCheck.compareInput(golden, classifier.preprocess(sample))
        XCTAssertEqual(failures, [], failures.joined(separator: "\n"))
    }

    func testTop5OnTheCpuMatchesTheGolden() throws {
        let golden = try golden()
        let classifier = try Classifier(computeUnits: .cpuOnly)
        let logits = try classifier.run(classifier.preprocess(Classifier.loadSample()))
        let failures = GoldenCheck.compareTopK(golden, logits)
        XCTAssertEqual(failures, [], failures.joined(separator: "\n"))
    }
}
