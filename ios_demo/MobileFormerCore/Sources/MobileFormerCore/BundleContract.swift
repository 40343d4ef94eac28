/// Where the app reads what `mfdeploy bundle --app ios` writes: the one list of names.
///
/// The Python side parses the `static let` lines of this file (mfdeploy/bundle.py), so a
/// renamed resource here is renamed for the bundler too. Keep every value a string literal.
public enum BundleContract {
    /// The artifact target this app runs.
    public static let target = "coreml"

    /// The bundle directory, relative to ios_demo/ (replaced as a whole; a folder reference
    /// in project.yml, so it is copied into the app as the folder `resourceDir`).
    public static let bundleDir = "MobileFormerDemo/mfdeploy"

    /// The same directory inside the app bundle.
    public static let resourceDir = "mfdeploy"

    public static let model = "model.mlpackage"
    public static let manifest = "manifest.json"
    public static let labels = "labels.txt"
    public static let golden = "golden.json"

    /// The sample photo, already resized to the manifest's short side by the bundler.
    public static let sampleImage = "sample.png"

    /// The committed photo the sample is made from, relative to ios_demo/.
    public static let sampleSource = "sample/chelsea.png"
}
