package io.doppel.bench;

import io.doppel.tools.MixedImage;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.CommandLineOptions;
import org.openjdk.jmh.runner.options.OptionsBuilder;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.SplittableRandom;

/**
 * Inputs shared by the benchmarks, and the {@code main()} plumbing each benchmark class uses.
 *
 * <p>Blocks are direct little-endian buffers, like the volume's mapped windows that the sender reads
 * from, filled by {@link MixedImage#fill} so the content matches the end-to-end bench images.
 */
public final class BenchData
{
    private BenchData()
    {
    }

    /** A direct little-endian buffer of {@code size} bytes of text-like or random content, deterministic for a seed. */
    public static ByteBuffer directBlock(final int size, final boolean text, final long seed)
    {
        final byte[] bytes = new byte[size];
        MixedImage.fill(bytes, size, text, new SplittableRandom(seed));
        return ByteBuffer.allocateDirect(size).order(ByteOrder.LITTLE_ENDIAN).put(bytes).clear();
    }

    /** Parses a {@code content} parameter: {@code text} or {@code random}; true for text. */
    public static boolean isText(final String content)
    {
        switch (content)
        {
            case "text": return true;
            case "random": return false;
            default: throw new IllegalArgumentException("content=" + content + " (expected: text | random)");
        }
    }

    /**
     * A direct little-endian block of {@code content}: {@code text} (text-like words), {@code random}
     * (incompressible) or {@code zeros} (what sparse images are mostly made of).
     */
    public static ByteBuffer contentBlock(final int size, final String content, final long seed)
    {
        if (content.equals("zeros"))
        {
            return ByteBuffer.allocateDirect(size).order(ByteOrder.LITTLE_ENDIAN);
        }
        if (!content.equals("text") && !content.equals("random"))
        {
            throw new IllegalArgumentException("content=" + content + " (expected: text | random | zeros)");
        }
        return directBlock(size, isText(content), seed);
    }

    /**
     * Runs the benchmarks of one class; further JMH command-line options ({@code -f 1 -wi 1 -prof gc} ...)
     * may be given as {@code args}.
     */
    public static void run(final Class<?> benchmarkClass, final String[] args) throws Exception
    {
        new Runner(new OptionsBuilder()
            .parent(new CommandLineOptions(args))
            .include("^" + benchmarkClass.getName().replace(".", "\\.") + "\\.")
            .build()).run();
    }
}
