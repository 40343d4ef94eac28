package org.mfdeploy.demo.core

/**
 * A small JSON reader (objects, arrays, strings, numbers, true/false/null) so manifest and
 * golden parsing runs on the JVM without Android's org.json. Numbers become Double.
 */
object Json {
    fun parse(text: String): Any? {
        val reader = Reader(text)
        val value = reader.value()
        reader.skipSpace()
        if (reader.pos != text.length) reader.fail("trailing characters")
        return value
    }

    private class Reader(val s: String) {
        var pos = 0

        fun fail(message: String): Nothing =
            throw IllegalArgumentException("JSON: $message at offset $pos")

        fun skipSpace() {
            while (pos < s.length && s[pos].isWhitespace()) pos++
        }

        fun value(): Any? {
            skipSpace()
            if (pos >= s.length) fail("unexpected end")
            return when (s[pos]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> number()
            }
        }

        private fun literal(word: String, result: Any?): Any? {
            if (!s.startsWith(word, pos)) fail("unexpected token")
            pos += word.length
            return result
        }

        private fun obj(): Map<String, Any?> {
            val map = LinkedHashMap<String, Any?>()
            pos++
            skipSpace()
            if (s[pos] == '}') { pos++; return map }
            while (true) {
                skipSpace()
                if (pos >= s.length || s[pos] != '"') fail("expected a key")
                val key = string()
                skipSpace()
                if (pos >= s.length || s[pos] != ':') fail("expected ':'")
                pos++
                map[key] = value()
                skipSpace()
                if (pos >= s.length) fail("unterminated object")
                when (s[pos++]) {
                    ',' -> {}
                    '}' -> return map
                    else -> fail("expected ',' or '}'")
                }
            }
        }

        private fun array(): List<Any?> {
            val list = ArrayList<Any?>()
            pos++
            skipSpace()
            if (s[pos] == ']') { pos++; return list }
            while (true) {
                list.add(value())
                skipSpace()
                if (pos >= s.length) fail("unterminated array")
                when (s[pos++]) {
                    ',' -> {}
                    ']' -> return list
                    else -> fail("expected ',' or ']'")
                }
            }
        }

        private fun string(): String {
            val out = StringBuilder()
            pos++
            while (true) {
                if (pos >= s.length) fail("unterminated string")
                val c = s[pos++]
                when (c) {
                    '"' -> return out.toString()
                    '\\' -> {
                        val e = s[pos++]
                        when (e) {
                            '"', '\\', '/' -> out.append(e)
                            'b' -> out.append('\b')
                            'f' -> out.append('\u000C')
                            'n' -> out.append('\n')
                            'r' -> out.append('\r')
                            't' -> out.append('\t')
                            'u' -> {
                                out.append(s.substring(pos, pos + 4).toInt(16).toChar())
                                pos += 4
                            }
                            else -> fail("bad escape")
                        }
                    }
                    else -> out.append(c)
                }
            }
        }

        private fun number(): Double {
            val start = pos
            while (pos < s.length && s[pos] in "+-0123456789.eE") pos++
            if (start == pos) fail("unexpected character '${s[pos]}'")
            return s.substring(start, pos).toDouble()
        }
    }
}

/** Typed access to parsed JSON objects, with errors that name the missing key. */
@Suppress("UNCHECKED_CAST")
internal fun Map<String, Any?>.obj(key: String): Map<String, Any?> =
    this[key] as? Map<String, Any?> ?: throw IllegalArgumentException("'$key' is not an object")

@Suppress("UNCHECKED_CAST")
internal fun Map<String, Any?>.list(key: String): List<Any?> =
    this[key] as? List<Any?> ?: throw IllegalArgumentException("'$key' is not a list")

internal fun Map<String, Any?>.str(key: String): String =
    this[key] as? String ?: throw IllegalArgumentException("'$key' is not a string")

internal fun Map<String, Any?>.strOrNull(key: String): String? = this[key] as? String

internal fun Map<String, Any?>.num(key: String): Double =
    this[key] as? Double ?: throw IllegalArgumentException("'$key' is not a number")

internal fun Map<String, Any?>.numOrNull(key: String): Double? = this[key] as? Double

internal fun Map<String, Any?>.ints(key: String): List<Int> = list(key).map { (it as Double).toInt() }

internal fun Map<String, Any?>.doubles(key: String): List<Double> = list(key).map { it as Double }
