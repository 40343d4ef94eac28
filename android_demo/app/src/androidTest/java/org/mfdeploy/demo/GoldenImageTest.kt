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
 * On a device or emulator: every engine whose bundle is in the APK (LiteRT, ExecuTorch) must
 * reproduce, with its bundled model on its bundled sample photo, the golden file
 * `mfdeploy bundle` wrote into that bundle (tensor checksum and values, top-5 within
 * tolerance). Each engine is checked against its own golden: the two goldens come from two
 * Python runtimes and two model files, so they agree only within tolerance.
 */
@RunWith(AndroidJUnit4::class)
class GoldenImageTest {
    private val context = InstrumentationRegistry.getInstrumentation().targetContext

    private fun golden(slot: BundleContract.Slot): Golden = Golden.parse(
        context.assets.open(slot.asset(BundleContract.GOLDEN)).bufferedReader().use { it.readText() }
    )

    /** The bundled engines; none bundled is a failure, not a pass. */
    private fun bundled(): List<BundleContract.Slot> = Engine.bundled(context).also {
        assertTrue("nothing bundled: run mfdeploy bundle --app android ARTIFACT", it.isNotEmpty())
    }

    @Test
    fun preprocessedSampleMatchesTheGolden() {
        val failures = ArrayList<String>()
        for (slot in bundled()) {
            val golden = golden(slot)
            Engine.open(context, slot).use { engine ->
                val sample = engine.loadSample()
                assertEquals(slot.engine, golden.sampleSize, listOf(sample.width, sample.height))
                GoldenCheck.compareInput(golden, engine.preprocess(sample)).mapTo(failures) { "${slot.engine}: $it" }
            }
        }
        assertTrue(failures.joinToString("\n"), failures.isEmpty())
    }

    @Test
    fun top5OnTheCpuMatchesTheGolden() {
        val failures = ArrayList<String>()
        for (slot in bundled()) {
            val golden = golden(slot)
            Engine.open(context, slot, Accelerator.CPU).use { engine ->
                val logits = engine.run(engine.preprocess(engine.loadSample()))
                GoldenCheck.compareTopK(golden, logits).mapTo(failures) { "${slot.engine}: $it" }
            }
        }
        assertTrue(failures.joinToString("\n"), failures.isEmpty())
    }
}
