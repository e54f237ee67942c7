package io.doppel.pipeline;

import com.dynatrace.hash4j.hashing.ByteAccess;
import com.dynatrace.hash4j.hashing.HashValue128;
import com.dynatrace.hash4j.hashing.Hasher128;
import com.dynatrace.hash4j.hashing.Hashing;
import io.doppel.storage.ZeroBlocks;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * XXH3-128 over block contents (hash4j, pure Java), read in place from direct buffers such as a
 * volume's mapped window. The hash of an all-zero block of each size is a constant, so zero blocks
 * (the common case in sparse images) are detected and never hashed.
 */
public final class BlockHash
{
    private static final Hasher128 XXH3 = Hashing.xxh3_128();
    private static final com.dynatrace.hash4j.hashing.Hasher64 XXH3_64 = Hashing.xxh3_64();
    /** hash4j reads multi-byte words with the buffer's own getLong/getInt, so the access must match its order. */
    private static final ByteAccess<ByteBuffer> LITTLE_ENDIAN = ByteAccess.forByteBuffer(ByteOrder.LITTLE_ENDIAN);
    private static final ByteAccess<ByteBuffer> BIG_ENDIAN = ByteAccess.forByteBuffer(ByteOrder.BIG_ENDIAN);

    private BlockHash()
    {
    }

    /** XXH3-128 of {@code buffer[index, index+length)}, by absolute reads. */
    public static HashValue128 of(final ByteBuffer buffer, final int index, final int length)
    {
        return XXH3.hashBytesTo128Bits(buffer, index, length,
            buffer.order() == ByteOrder.LITTLE_ENDIAN ? LITTLE_ENDIAN : BIG_ENDIAN);
    }

    /** XXH3-64 of {@code buffer[index, index+length)}, by absolute reads; allocates nothing. */
    public static long of64(final ByteBuffer buffer, final int index, final int length)
    {
        return XXH3_64.hashBytesToLong(buffer, index, length,
            buffer.order() == ByteOrder.LITTLE_ENDIAN ? LITTLE_ENDIAN : BIG_ENDIAN);
    }

    public static HashValue128 of(final byte[] bytes, final int offset, final int length)
    {
        return XXH3.hashBytesTo128Bits(bytes, offset, length);
    }

    /**
     * The hash of one block read in place; an all-zero block is not hashed: {@code zeroBlock} is the hash
     * of a whole zero block of {@code blockSize} bytes (a shorter last block gets its own).
     */
    public static HashValue128 ofBlock(final ByteBuffer window, final int index, final int length, final int blockSize,
        final HashValue128 zeroBlock)
    {
        if (ZeroBlocks.isZero(window, index, length))
        {
            return length == blockSize ? zeroBlock : ofZeros(length);
        }
        return of(window, index, length);
    }

    /** The hash of {@code length} zero bytes. */
    public static HashValue128 ofZeros(final int length)
    {
        return XXH3.hashBytesTo128Bits(new byte[length]);
    }
}
