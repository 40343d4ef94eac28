package org.mfdeploy.demo

import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.Matrix
import android.media.ExifInterface
import android.net.Uri
import android.os.Bundle
import android.widget.Button
import android.view.View
import android.widget.ImageView
import android.widget.RadioButton
import android.widget.RadioGroup
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.core.content.FileProvider
import java.io.File
import java.util.concurrent.Executors
import org.mfdeploy.demo.core.BundleContract

/**
 * One screen: the photo, the engine (LiteRT / ExecuTorch, among those whose bundle is in the
 * APK), CPU / GPU choice, top-5 with scores and the median inference time. Inference runs on
 * a background thread; the engine is rebuilt when a choice changes.
 */
class MainActivity : ComponentActivity() {
    private val worker = Executors.newSingleThreadExecutor()
    private var engine: Engine? = null
    private var slot: BundleContract.Slot? = null
    private var accelerator = Accelerator.CPU
    private var current: Bitmap? = null
    private lateinit var cameraFile: File

    private lateinit var info: TextView
    private lateinit var photo: ImageView
    private lateinit var results: TextView
    private lateinit var timing: TextView

    private val pick = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        uri?.let { show(decode(it)) }
    }

    private val take = registerForActivityResult(ActivityResultContracts.TakePicture()) { saved ->
        if (saved) show(decode(Uri.fromFile(cameraFile)))
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        info = findViewById(R.id.model_info)
        photo = findViewById(R.id.photo)
        results = findViewById(R.id.results)
        timing = findViewById(R.id.timing)
        cameraFile = File(File(cacheDir, "photos").apply { mkdirs() }, "camera.jpg")

        setUpEngines(findViewById(R.id.engine))
        findViewById<RadioGroup>(R.id.delegate).setOnCheckedChangeListener { _, id ->
            accelerator = if (id == R.id.gpu) Accelerator.GPU else Accelerator.CPU
            reopen()
        }
        findViewById<Button>(R.id.sample).setOnClickListener { showSample() }
        findViewById<Button>(R.id.pick).setOnClickListener {
            pick.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        findViewById<Button>(R.id.take).setOnClickListener {
            take.launch(FileProvider.getUriForFile(this, "$packageName.photos", cameraFile))
        }
        showSample()
    }

    /** One radio button per bundled engine; the first bundled one is selected. */
    private fun setUpEngines(group: RadioGroup) {
        val bundled = Engine.bundled(this)
        slot = bundled.firstOrNull()
        val ids = HashMap<Int, BundleContract.Slot>()
        for (s in bundled) {
            val button = RadioButton(this).apply {
                id = View.generateViewId()
                text = s.engine
            }
            group.addView(button)
            ids[button.id] = s
            if (s === slot) group.check(button.id)
        }
        group.visibility = if (bundled.size > 1) View.VISIBLE else View.GONE
        group.setOnCheckedChangeListener { _, id ->
            slot = ids[id]
            reopen()
        }
    }

    private fun reopen() {
        worker.execute { engine?.close(); engine = null }
        current?.let { show(it) }
    }

    private fun engine(): Engine {
        val chosen = slot ?: error("no model bundled")
        return engine ?: Engine.open(this, chosen, accelerator).also { engine = it }
    }

    private fun showSample() {
        worker.execute {
            val result = runCatching { engine().loadSample() }
            runOnUiThread { result.fold({ show(it) }, { fail(it) }) }
        }
    }

    private fun show(bitmap: Bitmap) {
        current = bitmap
        photo.setImageBitmap(bitmap)
        results.text = "…"
        worker.execute {
            val result = runCatching {
                val e = engine()
                Pair(e.manifest, e.classify(bitmap))
            }
            runOnUiThread {
                result.fold({ (manifest, r) ->
                    info.text = "${manifest.model} ${manifest.target} ${manifest.precision} " +
                        "(${manifest.layout} ${manifest.input.dtype})" +
                        if (manifest.syntheticWeights) "\nsynthetic weights: classes are meaningless" else ""
                    results.text = r.top.joinToString("\n") {
                        String.format("%.3f  %4d  %s", it.score, it.index, it.label)
                    }
                    timing.text = String.format("median %.2f ms over %d runs, %s", r.medianMs, r.runs, r.accelerator)
                }, { fail(it) })
            }
        }
    }

    private fun fail(error: Throwable) {
        results.text = "Error: ${error.message}\nRun `mfdeploy bundle --app android ARTIFACT` first " +
            "(a tflite or executorch artifact)."
    }

    /** A picked or captured photo, upright (EXIF orientation applied), ARGB_8888. */
    private fun decode(uri: Uri): Bitmap {
        val options = BitmapFactory.Options().apply { inPreferredConfig = Bitmap.Config.ARGB_8888 }
        val bitmap = contentResolver.openInputStream(uri)!!.use { BitmapFactory.decodeStream(it, null, options) }
            ?: error("cannot decode $uri")
        val degrees = contentResolver.openInputStream(uri)!!.use {
            when (ExifInterface(it).getAttributeInt(ExifInterface.TAG_ORIENTATION, ExifInterface.ORIENTATION_NORMAL)) {
                ExifInterface.ORIENTATION_ROTATE_90 -> 90f
                ExifInterface.ORIENTATION_ROTATE_180 -> 180f
                ExifInterface.ORIENTATION_ROTATE_270 -> 270f
                else -> 0f
            }
        }
        if (degrees == 0f) return bitmap
        val matrix = Matrix().apply { postRotate(degrees) }
        return Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, matrix, true)
    }

    override fun onDestroy() {
        worker.execute { engine?.close() }
        worker.shutdown()
        super.onDestroy()
    }
}
