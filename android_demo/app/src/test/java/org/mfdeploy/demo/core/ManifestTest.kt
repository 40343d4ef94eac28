package org.mfdeploy.demo.core

import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

class ManifestTest {
    private fun manifest(input: String) = """
        {"schema_version": 2, "model": "mobile_former_26m", "variant": "26m", "target": "tflite",
         "precision": "fp32", "model_file": "model.tflite", "labels_file": "labels.txt",
         "num_classes": 1000, "synthetic_weights": true, "extra": {"layout": "NHWC"},
         "input": $input,
         "output": {"name": "logits", "shape": [1, 1000], "dtype": "float32", "layout": null,
                    "scale": null, "zero_point": null},
         "preprocessing": {"crop_pct": 0.875, "interpolation": "bilinear", "layout": "NCHW",
                           "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                           "pixel_scale": 0.00392156862745098, "resize": 256, "resolution": 224}}
    """

    @Test
    fun parsesAFloatNhwcManifest() {
        val m = ModelManifest.parse(manifest(
            """{"name": "input", "shape": [1, 224, 224, 3], "dtype": "float32", "layout": "NHWC",
                "scale": null, "zero_point": null}"""))
        assertEquals("NHWC", m.layout)
        assertEquals(listOf(1, 224, 224, 3), m.input.shape)
        assertNull(m.input.scale)
        assertTrue(!m.input.quantized)
        assertEquals(256, m.preprocessing.resize)
        assertEquals(224, m.preprocessing.resolution)
        assertEquals(0.485f, m.preprocessing.mean[0], 0f)
        assertEquals((1.0 / 255.0).toFloat(), m.preprocessing.pixelScale, 0f)
        assertTrue(m.syntheticWeights)
    }

    @Test
    fun readsInt8ScaleAndZeroPoint() {
        val m = ModelManifest.parse(manifest(
            """{"name": "input", "shape": [1, 3, 224, 224], "dtype": "int8", "layout": "NCHW",
                "scale": 0.0186, "zero_point": -14}"""))
        assertEquals("NCHW", m.layout)
        assertTrue(m.input.quantized)
        assertEquals(0.0186, m.input.scale!!, 0.0)
        assertEquals(-14, m.input.zeroPoint)
    }

    @Test
    fun missingLayoutMeansNchw() {
        val m = ModelManifest.parse(manifest(
            """{"name": "input", "shape": [1, 3, 224, 224], "dtype": "float32"}"""))
        assertEquals("NCHW", m.layout)
    }

    @Test(expected = IllegalArgumentException::class)
    fun refusesAnotherSchemaVersion() {
        ModelManifest.parse(manifest("{}").replace("\"schema_version\": 2", "\"schema_version\": 1"))
    }

    @Test(expected = IllegalArgumentException::class)
    fun refusesABatchOfFour() {
        ModelManifest.parse(manifest(
            """{"name": "input", "shape": [4, 3, 224, 224], "dtype": "float32", "layout": "NCHW"}"""))
    }

    @Test
    fun jsonEscapesAndNumbers() {
        @Suppress("UNCHECKED_CAST")
        val map = Json.parse("""{"a": "x\"y\u00e9\n", "b": [-1.5e-3, 2, true, null]}""") as Map<String, Any?>
        assertEquals("x\"y\u00e9\n", map["a"])
        assertEquals(listOf(-1.5e-3, 2.0, true, null), map["b"])
    }

    @Test
    fun labelsSkipBlankLines() {
        assertEquals(listOf("tench", "goldfish"), parseLabels("tench\ngoldfish\n\n"))
    }
}
