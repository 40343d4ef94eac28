package org.mfdeploy.demo.core

import java.io.File
import javax.imageio.ImageIO
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test

/**
 * Each bundled sample through this app's preprocessing on the JVM must give its golden tensor
 * (exact checksum): the Kotlin arithmetic equals mfdeploy/preprocessing.py's, in the layout
 * of each engine's model (NHWC for LiteRT, NCHW for ExecuTorch). Skipped until
 * `mfdeploy bundle --app android` has filled at least one slot's bundle directory.
 */
class GoldenFileTest {
    // Gradle runs unit tests in the module directory (app/); bundle dirs are from the project root.
    private fun bundle(slot: BundleContract.Slot): File =
        File("..", slot.bundleDir).takeIf { it.isDirectory } ?: File(slot.bundleDir)

    @Test
    fun sampleTensorMatchesTheGolden() {
        val bundled = BundleContract.SLOTS.filter { File(bundle(it), BundleContract.GOLDEN).isFile }
        assumeTrue("not bundled yet: run mfdeploy bundle --app android", bundled.isNotEmpty())
        for (slot in bundled) checkSlot(slot, bundle(slot))
    }

    private fun checkSlot(slot: BundleContract.Slot, bundle: File) {
        val golden = Golden.parse(File(bundle, BundleContract.GOLDEN).readText())
        val manifest = ModelManifest.parse(File(bundle, BundleContract.MANIFEST).readText())
        assertEquals(slot.target, manifest.target)
        val image = ImageIO.read(File(bundle, golden.sampleImage))
        val (w, h) = Pair(image.width, image.height)
        // The sample is shipped at the resized size, so the app skips its own resampling.
        assertEquals(Preprocessor.resizedSize(w, h, manifest.preprocessing.resize), Pair(w, h))
        assertEquals(golden.sampleSize, listOf(w, h))
        val pixels = image.getRGB(0, 0, w, h, null, 0, w)
        val x = Preprocessor.normalize(pixels, w, h, manifest.preprocessing, manifest.layout)
        val failures = GoldenCheck.compareInput(golden, x)
        assertTrue(slot.engine + ": " + failures.joinToString("\n"), failures.isEmpty())
        assertEquals(parseLabels(File(bundle, BundleContract.LABELS).readText()).size, manifest.numClasses)
    }
}
