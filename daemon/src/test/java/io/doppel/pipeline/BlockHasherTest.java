package io.doppel.pipeline;

import com.dynatrace.hash4j.hashing.HashValue128;
import com.dynatrace.hash4j.hashing.Hashing;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/** {@link BlockHasher} must give hash4j's XXH3-128 for every length, offset and byte order. */
class BlockHasherTest
{
    private static final int MAX_EXHAUSTIVE = 3 * 1024 + 3 * 64 + 1; // past three blocks and into a fourth

    @Test
    void everyLengthUpToSeveralBlocksMatchesHash4j()
    {
        final byte[] bytes = random(MAX_EXHAUSTIVE + 16, 1);
        final ByteBuffer direct = direct(bytes, ByteOrder.LITTLE_ENDIAN);
        final BlockHasher hasher = new BlockHasher();
        for (int length = 0; length <= MAX_EXHAUSTIVE; length++)
        {
            final int index = length % 13; // unaligned starts too
            assertSame(hasher.hash(direct, index, length), Hashing.xxh3_128().hashBytesTo128Bits(bytes, index, length),
                length);
        }
    }

    @Test
    void wholeBlocksOfEverySizeMatchHash4j()
    {
        final BlockHasher hasher = new BlockHasher();
        for (int size = 4096; size <= 1 << 20; size <<= 1)
        {
            for (final ByteOrder order : new ByteOrder[] {ByteOrder.LITTLE_ENDIAN, ByteOrder.BIG_ENDIAN})
            {
                final byte[] bytes = random(size, size);
                assertSame(hasher.hash(direct(bytes, order), 0, size), Hashing.xxh3_128().hashBytesTo128Bits(bytes),
                    size);
                assertSame(hasher.hash(ByteBuffer.wrap(bytes).order(order), 0, size),
                    Hashing.xxh3_128().hashBytesTo128Bits(bytes), size);
            }
        }
    }

    @Test
    void zeroAndOddLengthsMatchBlockHash()
    {
        final BlockHasher hasher = new BlockHasher();
        final ByteBuffer zeros = ByteBuffer.allocateDirect(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
        final SplittableRandom random = new SplittableRandom(9);
        for (int i = 0; i < 200; i++)
        {
            final int length = random.nextInt(1, 1 << 20);
            final int index = random.nextInt(0, (1 << 20) - length + 1);
            assertSame(hasher.hash(zeros, index, length), BlockHash.ofZeros(length), length);
        }
    }

    private static void assertSame(final BlockHasher hasher, final HashValue128 expected, final int length)
    {
        assertThat(new long[] {hasher.high(), hasher.low()})
            .as("XXH3-128 of %d bytes", length)
            .containsExactly(expected.getMostSignificantBits(), expected.getLeastSignificantBits());
    }

    private static byte[] random(final int length, final long seed)
    {
        final byte[] bytes = new byte[length];
        final SplittableRandom random = new SplittableRandom(seed);
        for (int i = 0; i < length; i++)
        {
            bytes[i] = (byte)random.nextInt();
        }
        return bytes;
    }

    private static ByteBuffer direct(final byte[] bytes, final ByteOrder order)
    {
        return ByteBuffer.allocateDirect(bytes.length).order(order).put(bytes).clear();
    }
}
