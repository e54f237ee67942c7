package io.doppel.pipeline;

import com.dynatrace.hash4j.hashing.HashValue128;
import io.doppel.storage.ZeroBlocks;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * XXH3-128 (seed 0, default secret) of a block read in place, with the result left in {@link #high()} and
 * {@link #low()} instead of a new object: the same value as {@link BlockHash#of(ByteBuffer, int, int)}.
 *
 * <p>Why: hash4j returns every 128-bit hash as a new {@link HashValue128}, from a method too large for the
 * JIT to inline, so the object always escapes: 32 bytes of garbage per block on the hot path (encoder and
 * applier). This is XXH3's long-input path (over 240 bytes, which every block is: blocks are at least
 * 4 KiB), written after the reference implementation's scalar code; shorter inputs (small logged writes)
 * and big-endian views are handed to hash4j. Tests compare it with hash4j over every length up to several stripes blocks and
 * over whole blocks. One hasher per thread: not thread-safe.
 */
public final class BlockHasher
{
    /** Inputs up to this length take XXH3's short paths, which hash4j computes. */
    static final int MID_SIZE_MAX = 240;

    private static final int STRIPE_LEN = 64;
    private static final int STRIPES_PER_BLOCK = 16; // (secret length 192 - stripe length 64) / 8
    private static final int BLOCK_LEN = STRIPE_LEN * STRIPES_PER_BLOCK;

    private static final long PRIME32_1 = 0x9E3779B1L;
    private static final long PRIME64_1 = 0x9E3779B185EBCA87L;
    private static final long PRIME64_2 = 0xC2B2AE3D27D4EB4FL;

    /** XXH3's default secret, 192 bytes, as little-endian words at byte offsets 0, 8, ... 184. */
    private static final long[] SECRET = {
        0xBE4BA423396CFEB8L, 0x1CAD21F72C81017CL, 0xDB979083E96DD4DEL, 0x1F67B3B7A4A44072L,
        0x78E5C0CC4EE679CBL, 0x2172FFCC7DD05A82L, 0x8E2443F7744608B8L, 0x4C263A81E69035E0L,
        0xCB00C391BB52283CL, 0xA32E531B8B65D088L, 0x4EF90DA297486471L, 0xD8ACDEA946EF1938L,
        0x3F349CE33F76FAA8L, 0x1D4F0BC7C7BBDCF9L, 0x3159B4CD4BE0518AL, 0x647378D9C97E9FC8L,
        0xC3EBD33483ACC5EAL, 0xEB6313FAFFA081C5L, 0x49DAF0B751DD0D17L, 0x9E68D429265516D3L,
        0xFCA1477D58BE162BL, 0xCE31D07AD1B8F88FL, 0x280416958F3ACB45L, 0x7E404BBBCAFBD7AFL,
    };
    /** Secret words at byte offset 121 + 8i: the last stripe's keys. */
    private static final long[] LAST_STRIPE = unaligned(192 - STRIPE_LEN - 7);
    /** Secret words at byte offset 11 + 8i: the low half's merge keys. */
    private static final long[] MERGE_LOW = unaligned(11);
    /** Secret words at byte offset 117 + 8i: the high half's merge keys. */
    private static final long[] MERGE_HIGH = unaligned(192 - STRIPE_LEN - 11);

    private final long[] acc = new long[8];
    private long high;
    private long low;

    /** Hashes {@code buffer[index, index+length)} by absolute reads (position and limit unused); returns this. */
    public BlockHasher hash(final ByteBuffer buffer, final int index, final int length)
    {
        if (length <= MID_SIZE_MAX || buffer.order() != ByteOrder.LITTLE_ENDIAN)
        {
            // Short inputs, and big-endian views (never on the hot path: windows and frames are little-endian).
            final HashValue128 h = BlockHash.of(buffer, index, length);
            high = h.getMostSignificantBits();
            low = h.getLeastSignificantBits();
            return this;
        }
        final long[] a = acc;
        a[0] = 0xC2B2AE3DL;
        a[1] = PRIME64_1;
        a[2] = PRIME64_2;
        a[3] = 0x165667B19E3779F9L;
        a[4] = 0x85EBCA77C2B2AE63L;
        a[5] = 0x85EBCA77L;
        a[6] = 0x27D4EB2F165667C5L;
        a[7] = PRIME32_1;
        final int blocks = (length - 1) / BLOCK_LEN;
        for (int b = 0; b < blocks; b++)
        {
            stripes(buffer, index + b * BLOCK_LEN, STRIPES_PER_BLOCK);
            for (int i = 0; i < 8; i++)
            {
                long v = a[i];
                v ^= v >>> 47;
                v ^= SECRET[16 + i];
                a[i] = v * PRIME32_1;
            }
        }
        stripes(buffer, index + blocks * BLOCK_LEN, ((length - 1) - blocks * BLOCK_LEN) / STRIPE_LEN);
        final int last = index + length - STRIPE_LEN;
        for (int i = 0; i < 8; i++)
        {
            final long value = buffer.getLong(last + 8 * i);
            final long key = value ^ LAST_STRIPE[i];
            a[i ^ 1] += value;
            a[i] += (key & 0xFFFFFFFFL) * (key >>> 32);
        }
        low = merge(a, MERGE_LOW, length * PRIME64_1);
        high = merge(a, MERGE_HIGH, ~(length * PRIME64_2));
        return this;
    }

    /**
     * As {@link BlockHash#ofBlock}: an all-zero block is not hashed; a whole one takes {@code zeroBlock}'s
     * value (the hash of {@code blockSize} zero bytes). For compares, which hash every block of a volume.
     */
    public BlockHasher hashBlock(final ByteBuffer window, final int index, final int length, final int blockSize,
        final HashValue128 zeroBlock)
    {
        if (ZeroBlocks.isZero(window, index, length))
        {
            final HashValue128 h = length == blockSize ? zeroBlock : BlockHash.ofZeros(length);
            high = h.getMostSignificantBits();
            low = h.getLeastSignificantBits();
            return this;
        }
        return hash(window, index, length);
    }

    /** The most significant 64 bits of the last hash ({@link HashValue128#getMostSignificantBits()}). */
    public long high()
    {
        return high;
    }

    /** The least significant 64 bits of the last hash. */
    public long low()
    {
        return low;
    }

    /**
     * Accumulates {@code count} consecutive stripes starting at {@code at}, stripe s keyed by the secret
     * from byte 8s. Unrolled into locals: through the array, the loop ran at half hash4j's speed.
     */
    private void stripes(final ByteBuffer buffer, final int at, final int count)
    {
        final long[] a = acc;
        long a0 = a[0];
        long a1 = a[1];
        long a2 = a[2];
        long a3 = a[3];
        long a4 = a[4];
        long a5 = a[5];
        long a6 = a[6];
        long a7 = a[7];
        for (int s = 0; s < count; s++)
        {
            final int p = at + s * STRIPE_LEN;
            final long v0 = buffer.getLong(p);
            final long v1 = buffer.getLong(p + 8);
            final long v2 = buffer.getLong(p + 16);
            final long v3 = buffer.getLong(p + 24);
            final long v4 = buffer.getLong(p + 32);
            final long v5 = buffer.getLong(p + 40);
            final long v6 = buffer.getLong(p + 48);
            final long v7 = buffer.getLong(p + 56);
            final long k0 = v0 ^ SECRET[s];
            final long k1 = v1 ^ SECRET[s + 1];
            final long k2 = v2 ^ SECRET[s + 2];
            final long k3 = v3 ^ SECRET[s + 3];
            final long k4 = v4 ^ SECRET[s + 4];
            final long k5 = v5 ^ SECRET[s + 5];
            final long k6 = v6 ^ SECRET[s + 6];
            final long k7 = v7 ^ SECRET[s + 7];
            a0 += v1 + (k0 & 0xFFFFFFFFL) * (k0 >>> 32);
            a1 += v0 + (k1 & 0xFFFFFFFFL) * (k1 >>> 32);
            a2 += v3 + (k2 & 0xFFFFFFFFL) * (k2 >>> 32);
            a3 += v2 + (k3 & 0xFFFFFFFFL) * (k3 >>> 32);
            a4 += v5 + (k4 & 0xFFFFFFFFL) * (k4 >>> 32);
            a5 += v4 + (k5 & 0xFFFFFFFFL) * (k5 >>> 32);
            a6 += v7 + (k6 & 0xFFFFFFFFL) * (k6 >>> 32);
            a7 += v6 + (k7 & 0xFFFFFFFFL) * (k7 >>> 32);
        }
        a[0] = a0;
        a[1] = a1;
        a[2] = a2;
        a[3] = a3;
        a[4] = a4;
        a[5] = a5;
        a[6] = a6;
        a[7] = a7;
    }

    private static long merge(final long[] a, final long[] keys, final long start)
    {
        long result = start;
        for (int i = 0; i < 4; i++)
        {
            result += mulFold(a[2 * i] ^ keys[2 * i], a[2 * i + 1] ^ keys[2 * i + 1]);
        }
        result ^= result >>> 37;
        result *= 0x165667919E3779F9L;
        return result ^ (result >>> 32);
    }

    /** The 128-bit unsigned product of x and y, its two halves XORed. */
    private static long mulFold(final long x, final long y)
    {
        final long hi = Math.multiplyHigh(x, y) + ((x >> 63) & y) + ((y >> 63) & x);
        return hi ^ (x * y);
    }

    private static long[] unaligned(final int offset)
    {
        final ByteBuffer bytes = ByteBuffer.allocate(SECRET.length * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (final long word : SECRET)
        {
            bytes.putLong(word);
        }
        final long[] words = new long[8];
        for (int i = 0; i < 8; i++)
        {
            words[i] = bytes.getLong(offset + 8 * i);
        }
        return words;
    }
}
