package org.mfdeploy.demo.core

/**
 * Where the app reads what `mfdeploy bundle --app android` writes: the one list of names.
 *
 * The Python side parses the `const val` lines of this file (mfdeploy/apps/bundle.py), so a
 * renamed asset here is renamed for the bundler too. Keep every value a string literal.
 *
 * One slot per engine, each its own bundle directory (bundling one engine's artifact
 * replaces only that directory, so both can be present): `TARGET` and the unprefixed
 * `BUNDLE_DIR` / `ASSET_DIR` / `MODEL` are the first slot (LiteRT, the bundler's default);
 * `EXECUTORCH_TARGET` opens the second, whose `EXECUTORCH_*` constants replace those four
 * names (plus `EXECUTORCH_IO_DTYPE`). The file names after them are shared by both slots.
 */
object BundleContract {
    // ---- slot 1: LiteRT (.tflite)
    /** The artifact target the LiteRT engine runs. */
    const val TARGET = "tflite"

    /** The bundle directory, relative to the Gradle project root (replaced as a whole). */
    const val BUNDLE_DIR = "app/src/main/assets/mfdeploy"

    /** The same directory as AssetManager sees it. */
    const val ASSET_DIR = "mfdeploy"

    const val MODEL = "model.tflite"

    // ---- slot 2: ExecuTorch (.pte, XNNPACK)
    const val EXECUTORCH_TARGET = "executorch"
    const val EXECUTORCH_BUNDLE_DIR = "app/src/main/assets/mfdeploy-executorch"
    const val EXECUTORCH_ASSET_DIR = "mfdeploy-executorch"
    const val EXECUTORCH_MODEL = "model.pte"

    /** The engine feeds a FloatArray (Tensor.fromBlob) and reads floats: float32 I/O only. */
    const val EXECUTORCH_IO_DTYPE = "float32"

    // ---- shared by every slot
    const val MANIFEST = "manifest.json"
    const val LABELS = "labels.txt"
    const val GOLDEN = "golden.json"

    /** The sample photo, already resized to the manifest's short side by the bundler. */
    const val SAMPLE_IMAGE = "sample.png"

    /** The committed photo the sample is made from, relative to the project root. */
    const val SAMPLE_SOURCE = "sample/chelsea.png"

    /** One engine's bundle: the target it runs and where its files are. */
    class Slot(
        val engine: String,
        val target: String,
        val bundleDir: String,
        val assetDir: String,
        val model: String
    ) {
        /** A bundled file's asset path. */
        fun asset(name: String): String = "$assetDir/$name"
    }

    val LITERT = Slot("LiteRT", TARGET, BUNDLE_DIR, ASSET_DIR, MODEL)
    val EXECUTORCH = Slot(
        "ExecuTorch", EXECUTORCH_TARGET, EXECUTORCH_BUNDLE_DIR, EXECUTORCH_ASSET_DIR, EXECUTORCH_MODEL
    )

    /** Every slot, in the bundler's order (the first is its default). */
    val SLOTS = listOf(LITERT, EXECUTORCH)
}
