package io.doppel.tools;

import com.dynatrace.hash4j.hashing.HashStream128;
import com.dynatrace.hash4j.hashing.HashValue128;
import com.dynatrace.hash4j.hashing.Hashing;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.SplittableRandom;

/**
 * Sample images for the demo, tests and benchmarks: 1 MiB stripes of zeros (left as holes), text-like
 * data and random bytes, in turn, so compression, zero elision and raw fallback are all exercised.
 * Deterministic for a seed. Also derives "partly equal" copies and hashes whole files.
 */
public final class MixedImage
{
    public static final int STRIPE_BYTES = 1 << 20;
    private static final String[] WORDS = ("the of and to in is was that for on with as by at from his her this "
        + "which or be are an had not but have were they one all there their been has when who will more no if out "
        + "so said what up its about into than them can only other new some could time these two may then do first "
        + "any my now such like our over man me even most made after also did many before must through back years "
        + "where much your way well down should because each just those people how too little state good very make "
        + "world still own see men work long get here between both life being under never day same another know "
        + "while last might us great old year off come since against go came right used take three block volume "
        + "replica primary standby disk image write read sync flush offset length kernel device network").split(" ");
    private static final byte[][] WORD_BYTES = java.util.Arrays.stream(WORDS)
        .map(w -> w.getBytes(StandardCharsets.US_ASCII)).toArray(byte[][]::new);

    private MixedImage()
    {
    }

    /** Writes a new image of {@code size} bytes (a truncate first, so zero stripes stay holes). */
    public static void create(final Path path, final long size, final long seed) throws IOException
    {
        final SplittableRandom random = new SplittableRandom(seed);
        final byte[] stripe = new byte[STRIPE_BYTES];
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
            StandardOpenOption.READ, StandardOpenOption.TRUNCATE_EXISTING))
        {
            for (long offset = 0, i = 0; offset < size; offset += STRIPE_BYTES, i++)
            {
                final int n = (int)Math.min(STRIPE_BYTES, size - offset);
                final int kind = (int)(i % 3);
                if (kind == 0)
                {
                    continue; // zeros: a hole
                }
                fill(stripe, n, kind == 1, random);
                writeFully(ch, ByteBuffer.wrap(stripe, 0, n), offset);
            }
            if (ch.size() < size)
            {
                ch.write(ByteBuffer.wrap(new byte[1]), size - 1);
            }
        }
    }

    /**
     * Overwrites a random {@code fraction} of the {@code unit}-byte blocks of an image with new
     * content (text-like or random, in turn); returns the number of bytes changed.
     */
    public static long mutate(final Path path, final double fraction, final int unit, final long seed)
        throws IOException
    {
        final SplittableRandom random = new SplittableRandom(seed);
        final byte[] block = new byte[unit];
        long changed = 0;
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.WRITE, StandardOpenOption.READ))
        {
            final long units = ch.size() / unit;
            for (long u = 0; u < units; u++)
            {
                if (random.nextDouble() < fraction)
                {
                    fill(block, unit, (u & 1) == 0, random);
                    writeFully(ch, ByteBuffer.wrap(block), u * unit);
                    changed += unit;
                }
            }
        }
        return changed;
    }

    /** Fills {@code n} bytes with text-like words or random bytes. */
    public static void fill(final byte[] buf, final int n, final boolean text, final SplittableRandom random)
    {
        if (!text)
        {
            for (int i = 0; i < n; i += 8)
            {
                long r = random.nextLong();
                for (int j = i; j < Math.min(n, i + 8); j++)
                {
                    buf[j] = (byte)r;
                    r >>>= 8;
                }
            }
            return;
        }
        int i = 0;
        while (i < n)
        {
            final byte[] word = WORD_BYTES[random.nextInt(WORD_BYTES.length)];
            for (int j = 0; j < word.length && i < n; j++)
            {
                buf[i++] = word[j];
            }
            if (i < n)
            {
                buf[i++] = (byte)(random.nextInt(12) == 0 ? '\n' : ' ');
            }
        }
    }

    /** XXH3-128 of a whole file, as 32 hex digits. */
    public static String hash(final Path path) throws IOException
    {
        final HashStream128 stream = Hashing.xxh3_128().hashStream();
        final byte[] chunk = new byte[4 << 20];
        final ByteBuffer buf = ByteBuffer.wrap(chunk);
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ))
        {
            long pos = 0;
            while (true)
            {
                buf.clear();
                final int n = ch.read(buf, pos);
                if (n < 0)
                {
                    break;
                }
                stream.putBytes(chunk, 0, n);
                pos += n;
            }
        }
        final HashValue128 h = stream.get();
        return String.format("%016x%016x", h.getMostSignificantBits(), h.getLeastSignificantBits());
    }

    private static void writeFully(final FileChannel ch, final ByteBuffer buf, final long offset) throws IOException
    {
        long pos = offset;
        while (buf.hasRemaining())
        {
            pos += ch.write(buf, pos);
        }
    }
}
