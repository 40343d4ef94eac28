package org.mfdeploy.demo.core

import org.junit.Assert.assertArrayEquals
import org.junit.Assert.assertEquals
import org.junit.Test

class PreprocessorTest {
    private val spec = PreprocessingSpec(
        resolution = 2, resize = 3,
        mean = floatArrayOf(0.485f, 0.456f, 0.406f), std = floatArrayOf(0.229f, 0.224f, 0.225f),
        pixelScale = (1.0 / 255.0).toFloat(), interpolation = "bilinear")

    @Test
    fun resizedSizeRoundsLikePython() {
        // round(451 * 256 / 300) = round(384.85) = 385
        assertEquals(Pair(385, 256), Preprocessor.resizedSize(451, 300, 256))
        assertEquals(Pair(256, 385), Preprocessor.resizedSize(300, 451, 256))
        // Python rounds halves to even: round(4.5) = 4, round(5.5) = 6
        assertEquals(Pair(4, 3), Preprocessor.resizedSize(6, 4, 3))
        assertEquals(Pair(6, 3), Preprocessor.resizedSize(11, 6, 3))
        assertEquals(Pair(256, 256), Preprocessor.resizedSize(640, 640, 256))
    }

    @Test
    fun cropOriginRoundsDown() {
        assertEquals(Pair(80, 16), Preprocessor.cropOrigin(385, 256, 224))
        assertEquals(Pair(0, 0), Preprocessor.cropOrigin(3, 3, 2))
    }

    private fun argb(r: Int, g: Int, b: Int) = (0xFF shl 24) or (r shl 16) or (g shl 8) or b

    @Test
    fun normalizesTheCentreCropInBothLayouts() {
        // 3x3 image; the 2x2 crop starts at (0, 0) ((3 - 2) / 2 = 0).
        val px = IntArray(9) { argb(it * 10, 255 - it, it) }
        val nchw = Preprocessor.normalize(px, 3, 3, spec, "NCHW")
        val nhwc = Preprocessor.normalize(px, 3, 3, spec, "NHWC")
        fun expected(p: Int, c: Int): Float {
            val v = intArrayOf((p shr 16) and 0xFF, (p shr 8) and 0xFF, p and 0xFF)[c]
            return (v.toFloat() * spec.pixelScale - spec.mean[c]) / spec.std[c]
        }
        val crop = intArrayOf(0, 1, 3, 4) // row-major pixel indices of the crop
        for ((i, p) in crop.withIndex()) {
            for (c in 0 until 3) {
                assertEquals(expected(px[p], c), nchw[c * 4 + i], 0f)
                assertEquals(expected(px[p], c), nhwc[i * 3 + c], 0f)
            }
        }
        // Black and white through ImageNet mean / std (values from numpy float32).
        val bw = Preprocessor.normalize(intArrayOf(argb(0, 0, 0), argb(255, 255, 255),
            argb(0, 0, 0), argb(255, 255, 255)), 2, 2, spec, "NCHW")
        assertEquals(-2.117904f, bw[0], 1e-6f)
        assertEquals(2.2489083f, bw[1], 1e-6f)
        assertEquals(2.64f, bw[11], 1e-6f)
    }

    @Test
    fun quantizesHalfToEvenAndClips() {
        val q = Preprocessor.quantize(floatArrayOf(0.5f, 1.5f, -0.5f, 200f, -200f), 1.0, 0, -128, 127)
        assertArrayEquals(intArrayOf(0, 2, 0, 127, -128), q)
        val back = Preprocessor.dequantize(intArrayOf(-14, 0), 0.5, -14)
        assertEquals(0f, back[0], 0f)
        assertEquals(7f, back[1], 0f)
    }
}
