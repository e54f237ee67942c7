package io.doppel.config;

import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Arrays;

/**
 * A peer link's pre-shared key, as read from its {@code psk-file}. Kept apart from the config's printable
 * records: {@link #toString()} names the file, never the key, so a logged or reloaded config does not leak it.
 */
public final class PresharedKey
{
    /** Shortest key accepted, in bytes of the file's trimmed text ({@code openssl rand -hex 32} gives 64). */
    public static final int MIN_BYTES = 32;

    private final Path file;
    private final byte[] key;

    public PresharedKey(final Path file, final byte[] key)
    {
        this.file = file;
        this.key = key.clone();
    }

    public Path file()
    {
        return file;
    }

    /** A copy of the key bytes (the HMAC key). */
    public byte[] bytes()
    {
        return key.clone();
    }

    @Override
    public boolean equals(final Object o)
    {
        return o instanceof PresharedKey && ((PresharedKey)o).file.equals(file)
            && MessageDigest.isEqual(((PresharedKey)o).key, key);
    }

    @Override
    public int hashCode()
    {
        return file.hashCode();
    }

    @Override
    public String toString()
    {
        return "psk-file " + file;
    }

    /** Whether two keys differ (content or file); for the reload check. */
    public static boolean differ(final PresharedKey a, final PresharedKey b)
    {
        return a == null ? b != null : !a.equals(b);
    }

    static byte[] trimmed(final byte[] raw)
    {
        int from = 0;
        int to = raw.length;
        while (from < to && Character.isWhitespace(raw[from]))
        {
            from++;
        }
        while (to > from && Character.isWhitespace(raw[to - 1]))
        {
            to--;
        }
        return Arrays.copyOfRange(raw, from, to);
    }
}
