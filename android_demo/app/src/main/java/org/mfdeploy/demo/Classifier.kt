package org.mfdeploy.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.os.SystemClock
import java.io.Closeable
import java.nio.ByteBuffer
import java.nio.ByteOrder
import org.mfdeploy.demo.core.BundleContract
import org.mfdeploy.demo.core.ModelManifest
import org.mfdeploy.demo.core.Prediction
import org.mfdeploy.demo.core.Preprocessor
import org.mfdeploy.demo.core.TopK
import org.mfdeploy.demo.core.parseLabels
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Delegate
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate

enum class Accelerator { CPU, GPU }

/** What one classification gave: top-5, the median of [runs] invoke() times, what ran. */
data class Classification(
    val top: List<Prediction>,
    val medianMs: Double,
    val runs: Int,
    val accelerator: String,
)

/**
 * The bundled model (assets/mfdeploy/, written by `mfdeploy bundle --app android`) on
 * LiteRT: XNNPACK on the CPU by default, the GPU delegate on request (falls back to the CPU
 * when the device is not on LiteRT's GPU compatibility list). Everything about the input
 * (size, layout, mean / std, int8 scale / zero point) comes from the bundled manifest.json.
 */
class Classifier(context: Context, accelerator: Accelerator = Accelerator.CPU, threads: Int = 4) : Closeable {
    private val assets = context.assets
    val manifest: ModelManifest = ModelManifest.parse(readText(BundleContract.MANIFEST))
    val labels: List<String> = parseLabels(readText(BundleContract.LABELS))
    private var gpu: Delegate? = null
    val runsOn: String
    private val interpreter: Interpreter

    init {
        require(manifest.target == BundleContract.TARGET) { "bundled model is ${manifest.target}" }
        val options = Interpreter.Options().setNumThreads(threads).setUseXNNPACK(true)
        var used = "CPU (XNNPACK, $threads threads)"
        if (accelerator == Accelerator.GPU) {
            CompatibilityList().use { list ->
                if (list.isDelegateSupportedOnThisDevice) {
                    gpu = GpuDelegate(list.bestOptionsForThisDevice).also { options.addDelegate(it) }
                    used = "GPU delegate"
                } else {
                    used = "CPU (XNNPACK; GPU delegate not supported on this device)"
                }
            }
        }
        runsOn = used
        interpreter = Interpreter(readModel(), options)
        val shape = interpreter.getInputTensor(0).shape().toList()
        require(shape == manifest.input.shape) { "model input $shape, manifest ${manifest.input.shape}" }
    }

    private fun readText(name: String): String =
        assets.open(BundleContract.asset(name)).bufferedReader().use { it.readText() }

    private fun readModel(): ByteBuffer {
        val bytes = assets.open(BundleContract.asset(BundleContract.MODEL)).use { it.readBytes() }
        return ByteBuffer.allocateDirect(bytes.size).order(ByteOrder.nativeOrder()).apply {
            put(bytes)
            rewind()
        }
    }

    /** The bundled sample photo, decoded without density scaling or colour conversion. */
    fun loadSample(): Bitmap = assets.open(BundleContract.asset(BundleContract.SAMPLE_IMAGE)).use {
        BitmapFactory.decodeStream(it, null, BitmapFactory.Options().apply {
            inScaled = false
            inPreferredConfig = Bitmap.Config.ARGB_8888
        }) ?: error("cannot decode the sample photo")
    }

    /**
     * Bitmap -> the model's float input: short side to the manifest's `resize` (skipped when
     * the bitmap already has that size, as the bundled sample does), centre crop, normalise.
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

    private fun inputBuffer(x: FloatArray): ByteBuffer {
        val input = manifest.input
        val type = interpreter.getInputTensor(0).dataType()
        if (type == DataType.FLOAT32) {
            return ByteBuffer.allocateDirect(x.size * 4).order(ByteOrder.nativeOrder()).apply {
                asFloatBuffer().put(x)
            }
        }
        val scale = input.scale ?: error("integer input without a scale in the manifest")
        val (min, max) = if (type == DataType.UINT8) Pair(0, 255) else Pair(-128, 127)
        val q = Preprocessor.quantize(x, scale, input.zeroPoint ?: 0, min, max)
        return ByteBuffer.allocateDirect(q.size).order(ByteOrder.nativeOrder()).apply {
            for (v in q) put(v.toByte())
            rewind()
        }
    }

    private fun readLogits(out: ByteBuffer): FloatArray {
        out.rewind()
        val n = manifest.output.shape.last()
        val type = interpreter.getOutputTensor(0).dataType()
        if (type == DataType.FLOAT32) return FloatArray(n).also { out.asFloatBuffer().get(it) }
        val scale = manifest.output.scale ?: error("integer output without a scale in the manifest")
        val q = IntArray(n) { if (type == DataType.UINT8) out.get().toInt() and 0xFF else out.get().toInt() }
        return Preprocessor.dequantize(q, scale, manifest.output.zeroPoint ?: 0)
    }

    /** One inference on a preprocessed tensor: logits (dequantised for int8 outputs). */
    fun run(x: FloatArray): FloatArray = runTimed(x).first

    private fun runTimed(x: FloatArray): Pair<FloatArray, Double> {
        val input = inputBuffer(x)
        val out = ByteBuffer.allocateDirect(interpreter.getOutputTensor(0).numBytes())
            .order(ByteOrder.nativeOrder())
        val start = SystemClock.elapsedRealtimeNanos()
        interpreter.run(input, out)
        val ms = (SystemClock.elapsedRealtimeNanos() - start) / 1e6
        return Pair(readLogits(out), ms)
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
        return Classification(TopK.topK(logits, 5, labels), TopK.median(times), runs, runsOn)
    }

    override fun close() {
        interpreter.close()
        gpu?.close()
    }
}
