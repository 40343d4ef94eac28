package org.mfdeploy.demo.core

/**
 * Where the app reads what `mfdeploy bundle --app android` writes: the one list of names.
 *
 * The Python side parses the `const val` lines of this file (mfdeploy/bundle.py), so a
 * renamed asset here is renamed for the bundler too. Keep every value a string literal.
 */
object BundleContract {
    /** The artifact target this app runs. */
    const val TARGET = "tflite"

    /** The bundle directory, relative to the Gradle project root (replaced as a whole). */
    const val BUNDLE_DIR = "app/src/main/assets/mfdeploy"

    /** The same directory as AssetManager sees it. */
    const val ASSET_DIR = "mfdeploy"

    const val MODEL = "model.tflite"
    const val MANIFEST = "manifest.json"
    const val LABELS = "labels.txt"
    const val GOLDEN = "golden.json"

    /** The sample photo, already resized to the manifest's short side by the bundler. */
    const val SAMPLE_IMAGE = "sample.png"

    /** The committed photo the sample is made from, relative to the project root. */
    const val SAMPLE_SOURCE = "sample/chelsea.png"

    fun asset(name: String): String = "$ASSET_DIR/$name"
}
