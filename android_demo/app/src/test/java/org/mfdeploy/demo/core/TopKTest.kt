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
