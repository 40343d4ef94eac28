package org.mfdeploy.demo.core

import java.io.File
import javax.imageio.ImageIO
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assume.assumeTrue
import org.junit.Test

/**
 * The bundled sample through this app's preprocessing on the JVM must give the golden tensor
 * (exact checksum): the Kotlin arithmetic equals mfdeploy/preprocessing.py's. Skipped until
 * `mfdeploy bundle --app android` has filled the bundle directory.
 */
class GoldenFileTest {
    // Gradle runs unit tests in the module directory (app/); BUNDLE_DIR is from the project root.
    private val bundle = File("..", BundleContract.BUNDLE_DIR).takeIf { it.isDirectory }
        ?: File(BundleContract.BUNDLE_DIR)

    @Test
    fun sampleTensorMatchesTheGolden() {
        val goldenFile = File(bundle, BundleContract.GOLDEN)
        assumeTrue("not bundled yet: run mfdeploy bundle --app android", goldenFile.isFile)
        val golden = Golden.parse(goldenFile.readText())
        val manifest = ModelManifest.parse(File(bundle, BundleContract.MANIFEST).readText())
        val image = ImageIO.read(File(bundle, golden.sampleImage))
        val (w, h) = Pair(image.width, image.height)
        // The sample is shipped at the resized size, so the app skips its own resampling.
        assertEquals(Preprocessor.resizedSize(w, h, manifest.preprocessing.resize), Pair(w, h))
        assertEquals(golden.sampleSize, listOf(w, h))
        val pixels = image.getRGB(0, 0, w, h, null, 0, w)
        val x = Preprocessor.normalize(pixels, w, h, manifest.preprocessing, manifest.layout)
        val failures = GoldenCheck.compareInput(golden, x)
        assertTrue(failures.joinToString("\n"), failures.isEmpty())
        assertEquals(parseLabels(File(bundle, BundleContract.LABELS).readText()).size, manifest.numClasses)
    }
}
