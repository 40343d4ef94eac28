package org.mfdeploy.demo

import android.content.Context
import java.nio.ByteBuffer
import java.nio.ByteOrder
import org.mfdeploy.demo.core.BundleContract
import org.mfdeploy.demo.core.Preprocessor
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Delegate
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate

/**
 * The bundled `.tflite` (assets/mfdeploy/, written by `mfdeploy bundle --app android`) on
 * LiteRT: XNNPACK on the CPU by default, the GPU delegate on request (falls back to the CPU
 * when the device is not on LiteRT's GPU compatibility list). int8 input / output tensors
 * are quantised / dequantised with the manifest's scale and zero point.
 */
class LiteRtEngine(context: Context, accelerator: Accelerator = Accelerator.CPU, threads: Int = 4) :
    Engine(context, BundleContract.LITERT) {
    private var gpu: Delegate? = null
    override val runsOn: String
    private val interpreter: Interpreter

    init {
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

    private fun readModel(): ByteBuffer {
        val bytes = readModelBytes()
        return ByteBuffer.allocateDirect(bytes.size).order(ByteOrder.nativeOrder()).apply {
            put(bytes)
            rewind()
        }
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

    /** One interpreter run: logits, dequantised for int8 outputs. */
    override fun infer(x: FloatArray): FloatArray {
        val input = inputBuffer(x)
        val out = ByteBuffer.allocateDirect(interpreter.getOutputTensor(0).numBytes())
            .order(ByteOrder.nativeOrder())
        interpreter.run(input, out)
        return readLogits(out)
    }

    override fun close() {
        interpreter.close()
        gpu?.close()
    }
}
