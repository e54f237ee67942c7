package io.doppel.storage;

import java.nio.ByteBuffer;

/**
 * All-zero detection with absolute {@code getLong} reads, four words per step so the loads overlap.
 * It allocates nothing (a {@code slice().mismatch()} would create two views per block).
 */
public final class ZeroBlocks
{
    /** One read-only MiB of zeros, the largest block size. */
    public static final ByteBuffer ZEROS = ByteBuffer.allocateDirect(1 << 20).asReadOnlyBuffer();

    private ZeroBlocks()
    {
    }

    /** True when {@code buffer[index, index+length)} holds only zeros. */
    public static boolean isZero(final ByteBuffer buffer, final int index, final int length)
    {
        int i = index;
        final int end = index + length;
        final int end32 = index + (length & ~31);
        while (i < end32)
        {
            if ((buffer.getLong(i) | buffer.getLong(i + 8) | buffer.getLong(i + 16) | buffer.getLong(i + 24)) != 0)
            {
                return false;
            }
            i += 32;
        }
        while (i < end)
        {
            if (buffer.get(i) != 0)
            {
                return false;
            }
            i++;
        }
        return true;
    }
}
