package io.doppel.pipeline;

import io.doppel.net.FrameDecoder;
import io.doppel.net.FrameDecoderAccess;
import io.doppel.net.WireProtocol;
import io.doppel.storage.Volume;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.util.ResourceLeakDetector;
import io.netty.util.concurrent.FastThreadLocalThread;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicReference;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The block hot path allocates nothing per block: encode a block into a pooled frame, split it off the
 * stream with the frame decoder, apply it to a volume, release everything, and count the bytes the thread
 * allocated (HotSpot's per-thread counter) in three windows of 1000 blocks of 4 KiB and of 60 blocks of
 * 1 MiB per codec, keeping the least. Runs on a {@link FastThreadLocalThread}, as the sender and the event
 * loops do, with Netty's leak detector off for the measurement (it samples buffers with stack traces
 * by design; the test JVM runs it at paranoid level).
 */
class HotPathAllocationTest
{
    /** Blocks per size: enough for the JIT at 4 KiB (which runs first), few at 1 MiB (zstd: ~10 ms a block). */
    private static final int WARM_UP_SMALL = 4000;
    private static final int MEASURED_SMALL = 1000;
    private static final int WARM_UP_LARGE = 60;
    private static final int MEASURED_LARGE = 60;
    /** Less than one small object per block: an allocation per block would be 16 bytes or more. */
    private static final double MAX_BYTES_PER_BLOCK = 4;

    @TempDir
    Path dir;

    @Test
    void encodeDecodeAndApplyAllocateNothingPerBlock() throws Exception
    {
        final com.sun.management.ThreadMXBean threads =
            (com.sun.management.ThreadMXBean)ManagementFactory.getThreadMXBean();
        assertThat(threads.isThreadAllocatedMemorySupported()).isTrue();
        final ResourceLeakDetector.Level level = ResourceLeakDetector.getLevel();
        final AtomicReference<Throwable> failure = new AtomicReference<>();
        final List<String> report = new ArrayList<>();
        ResourceLeakDetector.setLevel(ResourceLeakDetector.Level.DISABLED);
        try (Volume volume = Volume.open(dir.resolve("standby.img"), 4L << 20))
        {
            final Thread thread = new FastThreadLocalThread(() ->
            {
                try
                {
                    for (final Compression codec : Compression.values())
                    {
                        for (final int size : new int[] {4096, 1 << 20})
                        {
                            final double perBlock = bytesPerBlock(threads, volume, codec, size);
                            report.add(codec.configName() + " " + size + ": " + perBlock + " B/block");
                        }
                    }
                }
                catch (final Throwable t)
                {
                    failure.set(t);
                }
            }, "hot-path");
            thread.start();
            thread.join();
        }
        finally
        {
            ResourceLeakDetector.setLevel(level);
        }
        assertThat(failure.get()).as("failure on the hot-path thread").isNull();
        assertThat(report).hasSize(6).allSatisfy(line ->
            assertThat(Double.parseDouble(line.replaceAll(".*: (.*) B/block", "$1")))
                .as("%s (all: %s)", line, report).isLessThan(MAX_BYTES_PER_BLOCK));
    }

    private static double bytesPerBlock(final com.sun.management.ThreadMXBean threads, final Volume volume,
        final Compression codec, final int size)
    {
        final ByteBuffer block = ByteBuffer.allocateDirect(size).order(ByteOrder.LITTLE_ENDIAN);
        final SplittableRandom random = new SplittableRandom(size);
        for (int i = 0; i < size; i++)
        {
            block.put(i, (byte)(i % 7 == 0 ? random.nextInt() : 'a' + i % 5)); // compressible, not zero
        }
        final BlockEncoder encoder = new BlockEncoder(codec);
        final BlockApplier applier = new BlockApplier(volume);
        final FrameDecoder decoder = new FrameDecoder();
        final List<Object> out = new ArrayList<>(4);
        long seq = 0;
        final int warmUp = size <= 4096 ? WARM_UP_SMALL : WARM_UP_LARGE;
        final int measured = size <= 4096 ? MEASURED_SMALL : MEASURED_LARGE;
        for (int i = 0; i < warmUp; i++)
        {
            seq = oneBlock(encoder, decoder, applier, block, size, out, seq);
        }
        // The least of three windows: an allocation per block shows in every window, a one-off (a JIT
        // deoptimisation, a native context growing) in one only.
        double perBlock = Double.MAX_VALUE;
        for (int window = 0; window < 3; window++)
        {
            final long before = threads.getCurrentThreadAllocatedBytes();
            for (int i = 0; i < measured; i++)
            {
                seq = oneBlock(encoder, decoder, applier, block, size, out, seq);
            }
            perBlock = Math.min(perBlock, (threads.getCurrentThreadAllocatedBytes() - before) / (double)measured);
        }
        encoder.close();
        applier.close();
        return perBlock;
    }

    private static long oneBlock(final BlockEncoder encoder, final FrameDecoder decoder, final BlockApplier applier,
        final ByteBuffer block, final int size, final List<Object> out, final long seq)
    {
        final ByteBuf frame = encoder.encode(PooledByteBufAllocator.DEFAULT, seq + 1, 1L << 20, block, 0, size);
        try
        {
            FrameDecoderAccess.decode(decoder, frame, out);
        }
        finally
        {
            frame.release(); // the decoded slice holds its own reference
        }
        final ByteBuf decoded = (ByteBuf)out.get(0);
        out.clear();
        try
        {
            if (WireProtocol.readType(decoded) != WireProtocol.TYPE_DATA)
            {
                throw new AssertionError("not a DATA frame");
            }
            final long applied = applier.applyData(decoded);
            if (applied != seq + 1)
            {
                throw new AssertionError("applied seq " + applied + ", sent " + (seq + 1));
            }
            return applied;
        }
        finally
        {
            decoded.release();
        }
    }
}
