package org.mfdeploy.demo

import android.content.Context
import java.io.File
import org.mfdeploy.demo.core.BundleContract
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor

/**
 * The bundled `.pte` (assets/mfdeploy-executorch/, written by `mfdeploy bundle --app android`
 * from an `--target executorch` artifact) on ExecuTorch's Android runtime
 * (`org.pytorch:executorch-android`). The program is one XNNPACK delegate, so it runs on the
 * CPU whatever the accelerator choice; input float32 NCHW as the manifest says, output logits.
 *
 * `Module.load` takes a file path, not an asset: the model is copied once into the app's
 * files directory under a name from its sha256-checked manifest (`artifact_sha256`), written
 * to a temporary file and renamed, so a killed copy never leaves a truncated model behind.
 */
class ExecuTorchEngine(context: Context) : Engine(context, BundleContract.EXECUTORCH) {
    override val runsOn: String = "CPU (XNNPACK delegate)"
    private val shape: LongArray = manifest.input.shape.map { it.toLong() }.toLongArray()
    private val module: Module

    init {
        for (spec in listOf(manifest.input, manifest.output)) {
            require(spec.dtype == BundleContract.EXECUTORCH_IO_DTYPE) {
                "${spec.dtype} tensor; this engine feeds and reads ${BundleContract.EXECUTORCH_IO_DTYPE} only"
            }
        }
        require(manifest.layout == "NCHW") { "a .pte takes NCHW input, the manifest says ${manifest.layout}" }
        module = Module.load(modelFile(context).absolutePath)
    }

    private fun modelFile(context: Context): File {
        val dir = File(context.filesDir, slot.assetDir).apply { mkdirs() }
        val key = manifestSha256() ?: "model"
        val file = File(dir, "$key-${slot.model}")
        if (!file.isFile) {
            val tmp = File(dir, "${file.name}.tmp")
            tmp.writeBytes(readModelBytes())
            check(tmp.renameTo(file)) { "cannot write ${file.path}" }
        }
        return file
    }

    /** The model's sha256 from manifest.json (the bundler checked the file against it). */
    private fun manifestSha256(): String? {
        val text = assets.open(slot.asset(BundleContract.MANIFEST)).bufferedReader().use { it.readText() }
        return Regex("\"artifact_sha256\"\\s*:\\s*\"([0-9a-f]{64})\"").find(text)?.groupValues?.get(1)
    }

    override fun infer(x: FloatArray): FloatArray {
        val input = Tensor.fromBlob(x, shape)
        val logits = module.forward(EValue.from(input))[0].toTensor().dataAsFloatArray
        check(logits.size == manifest.numClasses) { "${logits.size} outputs for ${manifest.numClasses} classes" }
        return logits
    }

    override fun close() {
        module.destroy()
    }
}
