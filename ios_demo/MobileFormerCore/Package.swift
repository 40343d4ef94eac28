// swift-tools-version:5.9
// The app's pure logic (no UIKit / SwiftUI / Core ML): `swift test` runs its tests on macOS
// or Linux. The Xcode app target links this package (project.yml).
import PackageDescription

let package = Package(
    name: "MobileFormerCore",
    platforms: [.iOS(.v16), .macOS(.v13)],
    products: [.library(name: "MobileFormerCore", targets: ["MobileFormerCore"])],
    targets: [
        .target(name: "MobileFormerCore"),
        .testTarget(name: "MobileFormerCoreTests", dependencies: ["MobileFormerCore"]),
    ]
)
