package org.mfdeploy.demo.core

/**
 * The arithmetic of mfdeploy/preprocessing.py, step for step, without Android types.
 *
 * 1. resize the short side to `resize` ([resizedSize], PIL's rounding), 2. centre-crop
 * `resolution` ([cropOrigin], offsets rounded down), 3. x = (pixel * pixelScale - mean) / std
 * in float32 ([normalize]), laid out as the model's input (NCHW or NHWC).
 *
 * Step 1's resampling is done by the platform (Android: Bitmap.createScaledBitmap, bilinear
 * without PIL's antialiasing) and is the one step that differs from Python; it is skipped
 * when the image already has the resized size, as the bundled sample does, so the sample's
 * tensor is bit-exact. Steps 2 and 3 are exact for every image.
 */
object Preprocessor {
    /** (width, height) after resizing the short side to [resize], as PIL computes it. */
    fun resizedSize(width: Int, height: Int, resize: Int): Pair<Int, Int> {
        return if (width <= height) {
            Pair(resize, maxOf(resize, roundHalfEven(height.toLong() * resize, width)))
        } else {
            Pair(maxOf(resize, roundHalfEven(width.toLong() * resize, height)), resize)
        }
    }

    /** Python's int(round(a / b)) for the image sizes here: round half to even. */
    private fun roundHalfEven(a: Long, b: Int): Int = Math.rint(a.toDouble() / b).toInt()

    /** Left / top of the centred crop of [resolution] pixels: (size - resolution) // 2. */
    fun cropOrigin(width: Int, height: Int, resolution: Int): Pair<Int, Int> {
        require(width >= resolution && height >= resolution) {
            "image ${width}x$height is smaller than the crop $resolution"
        }
        return Pair((width - resolution) / 2, (height - resolution) / 2)
    }

    /**
     * ARGB pixels of the resized image (Bitmap.getPixels / BufferedImage.getRGB order, row
     * major) -> centre crop -> normalised float32 tensor in [layout] ("NCHW" or "NHWC").
     */
    fun normalize(argb: IntArray, width: Int, height: Int, spec: PreprocessingSpec, layout: String): FloatArray {
        require(argb.size == width * height) { "expected ${width * height} pixels, got ${argb.size}" }
        val res = spec.resolution
        val (left, top) = cropOrigin(width, height, res)
        val out = FloatArray(3 * res * res)
        val plane = res * res
        for (y in 0 until res) {
            val row = (top + y) * width + left
            for (x in 0 until res) {
                val p = argb[row + x]
                val rgb = intArrayOf((p shr 16) and 0xFF, (p shr 8) and 0xFF, p and 0xFF)
                for (c in 0 until 3) {
                    // Same float32 operations, in the same order, as numpy: (p * s - m) / d.
                    val v = (rgb[c].toFloat() * spec.pixelScale - spec.mean[c]) / spec.std[c]
                    if (layout == "NHWC") out[(y * res + x) * 3 + c] = v else out[c * plane + y * res + x] = v
                }
            }
        }
        return out
    }

    /** float -> int8 / uint8 as mfdeploy.runtimes.base.quantize: round half even, clip. */
    fun quantize(x: FloatArray, scale: Double, zeroPoint: Int, min: Int, max: Int): IntArray {
        val s = scale.toFloat()
        return IntArray(x.size) { i ->
            val q = Math.rint((x[i] / s).toDouble()).toInt() + zeroPoint
            q.coerceIn(min, max)
        }
    }

    fun dequantize(q: IntArray, scale: Double, zeroPoint: Int): FloatArray {
        val s = scale.toFloat()
        return FloatArray(q.size) { i -> (q[i] - zeroPoint).toFloat() * s }
    }
}
