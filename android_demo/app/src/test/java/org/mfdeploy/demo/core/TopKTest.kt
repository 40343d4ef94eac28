package org.mfdeploy.demo.core

import org.junit.Assert.assertEquals
import org.junit.Test

class TopKTest {
    @Test
    fun topKIsSortedBySoftmaxScoreTiesToTheLowerIndex() {
        val logits = floatArrayOf(1f, 3f, 2f, 3f, -1f, 0f)
        val top = TopK.topK(logits, 3, listOf("a", "b", "c", "d", "e", "f"))
        assertEquals(listOf(1, 3, 2), top.map { it.index })
        assertEquals("b", top[0].label)
        val probs = TopK.softmax(logits)
        assertEquals(1.0, probs.sum().toDouble(), 1e-6)
        assertEquals(probs[1], top[0].score, 0f)
    }

    @Test
    fun softmaxIsStableForLargeLogits() {
        val probs = TopK.softmax(floatArrayOf(1000f, 1000f))
        assertEquals(0.5f, probs[0], 1e-7f)
    }

    @Test
    fun median() {
        assertEquals(2.0, TopK.median(listOf(3.0, 1.0, 2.0)), 0.0)
        assertEquals(2.5, TopK.median(listOf(4.0, 1.0, 2.0, 3.0)), 0.0)
    }
}

class GoldenCheckTest {
    private val golden = Golden.parse("""
        {"sample_image": "sample.png", "sample_size": [2, 2], "logit_tolerance": 0.01,
         "input": {"name": "input", "layout": "NCHW", "shape": [1, 2], "sha256": "x", "sum": 0,
                   "tolerance": 1e-6, "samples": []},
         "top_k": [{"index": 0, "label": "a", "logit": 0, "score": 0.5},
                   {"index": 1, "label": "b", "logit": 0, "score": 0.5}]}
    """)

    @Test
    fun acceptsNearTiesAndRejectsStrangersAndDrift() {
        assertEquals(emptyList<String>(), GoldenCheck.compareTopK(golden, floatArrayOf(0.005f, 0f, -20f)))
        assertEquals(1, GoldenCheck.compareTopK(golden, floatArrayOf(0f, -5f, 1f)).count { "not golden" in it })
        assertEquals(1, GoldenCheck.compareTopK(golden, floatArrayOf(0.05f, 0f, -20f)).size)
    }

    @Test
    fun sha256OfFloat32LittleEndian() {
        // hashlib.sha256(np.array([1.0, -2.5], '<f4').tobytes()).hexdigest()
        assertEquals("48943f7a0ea247f8e3c9386d0c5822fe181d323a9289980426638cc4e72a43e1",
            GoldenCheck.sha256(floatArrayOf(1.0f, -2.5f)))
    }
}
