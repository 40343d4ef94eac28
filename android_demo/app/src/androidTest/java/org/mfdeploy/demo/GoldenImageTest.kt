package org.mfdeploy.demo

import androidx.test.ext.junit.runners.AndroidJUnit4
import androidx.test.platform.app.InstrumentationRegistry
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith
import org.mfdeploy.demo.core.BundleContract
import org.mfdeploy.demo.core.Golden
import org.mfdeploy.demo.core.GoldenCheck

/**
 * On a device or emulator: the bundled model on the bundled sample photo must reproduce the
 * golden file `mfdeploy bundle` wrote (tensor checksum and values, top-5 within tolerance).
 */
@RunWith(AndroidJUnit4::class)
class GoldenImageTest {
    private val context = InstrumentationRegistry.getInstrumentation().targetContext

    private fun golden(): Golden = Golden.parse(
        context.assets.open(BundleContract.asset(BundleContract.GOLDEN)).bufferedReader().use { it.readText() }
    )

    @Test
    fun preprocessedSampleMatchesTheGolden() {
        val golden = golden()
        Classifier(context).use { classifier ->
            val sample = classifier.loadSample()
            assertEquals(golden.sampleSize, listOf(sample.width, sample.height))
            val failures = GoldenCheck.compareInput(golden, classifier.preprocess(sample))
            assertTrue(failures.joinToString("\n"), failures.isEmpty())
        }
    }

    @Test
    fun top5OnTheCpuMatchesTheGolden() {
        val golden = golden()
        Classifier(context, Accelerator.CPU).use { classifier ->
            val logits = classifier.run(classifier.preprocess(classifier.loadSample()))
            val failures = GoldenCheck.compareTopK(golden, logits)
            assertTrue(failures.joinToString("\n"), failures.isEmpty())
        }
    }
}
