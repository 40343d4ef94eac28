package org.mfdeploy.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.os.SystemClock
import java.io.Closeable
import org.mfdeploy.demo.core.BundleContract
import org.mfdeploy.demo.core.ModelManifest
import org.mfdeploy.demo.core.Prediction
import org.mfdeploy.demo.core.Preprocessor
import org.mfdeploy.demo.core.TopK
import org.mfdeploy.demo.core.parseLabels

enum class Accelerator { CPU, GPU }

/** What one classification gave: top-5, the median of [runs] inference times, what ran. */
data class Classification(
    val top: List<Prediction>,
    val medianMs: Double,
    val runs: Int,
    val accelerator: String,
)

/**
 * One bundled model on one runtime. The bundle (manifest, labels, sample, model) is the
 * slot's directory in assets/, written by `mfdeploy bundle --app android`; everything about
 * the input (size, layout, mean / std, int8 scale / zero point) comes from its manifest.json,
 * so preprocessing, timing and top-k are the same for every engine and only [infer] differs.
 */
abstract class Engine(context: Context, val slot: BundleContract.Slot) : Closeable {
    protected val assets = context.assets
    val manifest: ModelManifest = ModelManifest.parse(readText(BundleContract.MANIFEST))
    val labels: List<String> = parseLabels(readText(BundleContract.LABELS))

    /** What the model runs on, as shown beside the timing. */
    abstract val runsOn: String

    init {
        require(manifest.target == slot.target) {
            "${slot.assetDir}/ holds a ${manifest.target} model, the ${slot.engine} engine runs ${slot.target}"
        }
        require(manifest.modelFile == slot.model) { "bundled model file ${manifest.modelFile}, expected ${slot.model}" }
    }

    private fun readText(name: String): String =
        assets.open(slot.asset(name)).bufferedReader().use { it.readText() }

    protected fun readModelBytes(): ByteArray = assets.open(slot.asset(slot.model)).use { it.readBytes() }

    /** The bundled sample photo, decoded without density scaling or colour conversion. */
    fun loadSample(): Bitmap = assets.open(slot.asset(BundleContract.SAMPLE_IMAGE)).use {
        BitmapFactory.decodeStream(it, null, BitmapFactory.Options().apply {
            inScaled = false
            inPreferredConfig = Bitmap.Config.ARGB_8888
        }) ?: error("cannot decode the sample photo")
    }

    /**
     * Bitmap -> the model's float input in the manifest's layout (NHWC for LiteRT, NCHW for
     * ExecuTorch): short side to `resize` (skipped when the bitmap already has that size, as
     * the bundled sample does), centre crop, normalise.
     */
    fun preprocess(bitmap: Bitmap): FloatArray {
        val spec = manifest.preprocessing
        val (w, h) = Preprocessor.resizedSize(bitmap.width, bitmap.height, spec.resize)
        val resized = if (w == bitmap.width && h == bitmap.height) {
            bitmap
        } else {
            // Platform bilinear: not PIL's antialiased filter, see docs/apps.md.
            Bitmap.createScaledBitmap(bitmap, w, h, true)
        }
        val argb = IntArray(w * h)
        resized.getPixels(argb, 0, w, 0, 0, w, h)
        return Preprocessor.normalize(argb, w, h, spec, manifest.layout)
    }

    /** One inference on a preprocessed tensor (model layout): the logits, as float32. */
    abstract fun infer(x: FloatArray): FloatArray

    /** One inference on a preprocessed tensor: logits. */
    fun run(x: FloatArray): FloatArray = infer(x)

    private fun runTimed(x: FloatArray): Pair<FloatArray, Double> {
        val start = SystemClock.elapsedRealtimeNanos()
        val logits = infer(x)
        return Pair(logits, (SystemClock.elapsedRealtimeNanos() - start) / 1e6)
    }

    /** Preprocess, one warm-up run, then [runs] timed runs; the top-5 of the last. */
    fun classify(bitmap: Bitmap, runs: Int = 10): Classification {
        val x = preprocess(bitmap)
        runTimed(x) // warm-up: first run allocates and (GPU) compiles
        val times = ArrayList<Double>()
        var logits = FloatArray(0)
        repeat(runs) {
            val (out, ms) = runTimed(x)
            logits = out
            times.add(ms)
        }
        return Classification(TopK.topK(logits, 5, labels), TopK.median(times), runs, "${slot.engine}, $runsOn")
    }

    companion object {
        /** The slots whose bundle is in the APK (its manifest is present), in contract order. */
        fun bundled(context: Context): List<BundleContract.Slot> = BundleContract.SLOTS.filter { slot ->
            runCatching { context.assets.list(slot.assetDir)?.contains(BundleContract.MANIFEST) == true }
                .getOrDefault(false)
        }

        /** The engine for [slot]'s bundle. */
        fun open(context: Context, slot: BundleContract.Slot, accelerator: Accelerator = Accelerator.CPU): Engine =
            when (slot.target) {
                BundleContract.TARGET -> LiteRtEngine(context, accelerator)
                BundleContract.EXECUTORCH_TARGET -> ExecuTorchEngine(context)
                else -> error("no engine for ${slot.target} models")
            }
    }
}
