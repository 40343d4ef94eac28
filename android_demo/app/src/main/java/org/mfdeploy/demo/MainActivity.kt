package org.mfdeploy.demo

import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.Matrix
import android.media.ExifInterface
import android.net.Uri
import android.os.Bundle
import android.widget.Button
import android.widget.ImageView
import android.widget.RadioGroup
import android.widget.TextView
import androidx.activity.ComponentActivity
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.core.content.FileProvider
import java.io.File
import java.util.concurrent.Executors

/**
 * One screen: the photo, CPU / GPU choice, top-5 with scores and the median inference time.
 * Inference runs on a background thread; the classifier is rebuilt when the choice changes.
 */
class MainActivity : ComponentActivity() {
    private val worker = Executors.newSingleThreadExecutor()
    private var classifier: Classifier? = null
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

        findViewById<RadioGroup>(R.id.delegate).setOnCheckedChangeListener { _, id ->
            accelerator = if (id == R.id.gpu) Accelerator.GPU else Accelerator.CPU
            worker.execute { classifier?.close(); classifier = null }
            current?.let { show(it) }
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

    private fun classifier(): Classifier =
        classifier ?: Classifier(this, accelerator).also { classifier = it }

    private fun showSample() {
        worker.execute {
            val result = runCatching { classifier().loadSample() }
            runOnUiThread { result.fold({ show(it) }, { fail(it) }) }
        }
    }

    private fun show(bitmap: Bitmap) {
        current = bitmap
        photo.setImageBitmap(bitmap)
        results.text = "…"
        worker.execute {
            val result = runCatching {
                val c = classifier()
                Pair(c.manifest, c.classify(bitmap))
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
        results.text = "Error: ${error.message}\nRun `mfdeploy bundle --app android ARTIFACT` first."
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
        worker.execute { classifier?.close() }
        worker.shutdown()
        super.onDestroy()
    }
}
