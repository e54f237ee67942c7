package io.doppel.bench.pipeline;

import io.doppel.bench.BenchData;
import io.doppel.bench.ByteCounter;
import io.doppel.net.WireProtocol;
import io.doppel.pipeline.BlockApplier;
import io.doppel.pipeline.BlockEncoder;
import io.doppel.pipeline.Compression;
import io.doppel.storage.Volume;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.TimeUnit;

/**
 * The block pipeline on both ends of a link, one block per operation.
 *
 * <ul>
 *   <li>{@code encode}: {@link BlockEncoder#encode} of one block (zero check, XXH3-128, compression with
 *       raw fallback, frame CRC32C) into a frame from {@link PooledByteBufAllocator#DEFAULT}, released at
 *       once: the primary's per-block CPU cost.</li>
 *   <li>{@code apply}: {@link BlockApplier#applyData} of that block's DATA frame (decompress into scratch,
 *       XXH3-128 check, write into a memory-mapped {@link Volume} backed by a temp file): the standby's
 *       per-block CPU cost. The frame is built once; each operation rewinds its reader index to the body.</li>
 * </ul>
 *
 * <p>Why: together with the network these bound replication throughput per core, and the codec choice
 * trades this CPU time against bytes on the wire. Random content never compresses by 10%, so every codec
 * sends it raw: those rows measure the cost of trying (encode) and the raw path (apply). A zero block never
 * reaches a codec: {@code encode} detects it and builds a ZERO frame, {@code apply} is
 * {@link BlockApplier#applyZero}, which finds the range already zero (a sparse standby) and leaves it; the
 * three codecs run the same path there. The setup prints the codec actually used and the payload size.
 *
 * <p>The fork runs the benchmark threads as Netty {@code FastThreadLocalThread}s, as the daemon does, with
 * the leak detector off, so {@code -prof gc} shows what the daemon allocates per block (see
 * {@link io.doppel.bench.net.FrameBenchmark}).
 *
 * <p>Results: operations (blocks) per second, and {@code :bytes} in raw (uncompressed) bytes per second
 * (JMH labels it ops/s). Raw bytes per operation = {@code blockSize}. CRC32C checking of received frames
 * happens in the frame decoder and is not part of {@code apply}.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Djmh.executor=CUSTOM",
    "-Djmh.executor.class=io.doppel.bench.FastThreadLocalExecutor", "-Dio.netty.leakDetection.level=disabled"})
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
public class CodecBenchmark
{
    private static final ByteBufAllocator ALLOC = PooledByteBufAllocator.DEFAULT;
    /** The standby volume: 2 MiB, one mapped window; blocks are applied at 1 MiB. */
    private static final long VOLUME_BYTES = 2L << 20;
    private static final long OFFSET = 1L << 20;
    /** Frame index of the DATA body's codec byte: after header, seq, offset and length. */
    private static final int CODEC_INDEX = WireProtocol.HEADER_BYTES + 8 + 8 + 4;

    /** The volume's codec, as in the config file. */
    @Param({"lz4", "zstd", "none"})
    public String compression;

    /**
     * {@code text}: text-like words, compressible; {@code random}: incompressible bytes; {@code zeros}: a
     * zero block, which the encoder turns into a payload-less ZERO frame before any codec runs.
     */
    @Param({"text", "random", "zeros"})
    public String content;

    /** Block size in bytes: the smallest block and the largest frame payload. */
    @Param({"4096", "1048576"})
    public int blockSize;

    private ByteBuffer source;
    private BlockEncoder encoder;
    private long seq;

    private Path image;
    private Volume volume;
    private BlockApplier applier;
    /** One encoded DATA frame, whole from index 0, owned by this state and released in tearDown. */
    private ByteBuf frame;

    @Setup(Level.Trial)
    public void setUp() throws IOException
    {
        source = BenchData.contentBlock(blockSize, content, 7);
        encoder = new BlockEncoder(Compression.fromConfig(compression));
        image = Files.createTempFile("doppel-bench-", ".img");
        volume = Volume.open(image, VOLUME_BYTES);
        applier = new BlockApplier(volume);
        frame = encoder.encode(ALLOC, 1, OFFSET, source, 0, blockSize);
        final int expected = content.equals("zeros") ? WireProtocol.TYPE_ZERO : WireProtocol.TYPE_DATA;
        if (frame.getUnsignedByte(WireProtocol.TYPE_OFFSET) != expected)
        {
            throw new IllegalStateException("expected a " + WireProtocol.typeName(expected) + " frame, got "
                + WireProtocol.typeName(frame.getUnsignedByte(WireProtocol.TYPE_OFFSET)));
        }
        applyFrame(frame);
        checkVolumeHoldsSource();
        if (expected == WireProtocol.TYPE_ZERO)
        {
            System.out.printf(Locale.ROOT, "%n# frame: ZERO, no payload, %d bytes in all%n", frame.writerIndex());
            return;
        }
        final int payload = frame.writerIndex() - WireProtocol.HEADER_BYTES - WireProtocol.DATA_HEADER_BYTES;
        System.out.printf(Locale.ROOT, "%n# frame: codec %s, payload %d of %d bytes (%.1f%%)%n",
            Compression.fromWireId(frame.getUnsignedByte(CODEC_INDEX)).configName(), payload, blockSize,
            100.0 * payload / blockSize);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws IOException
    {
        try
        {
            encoder.close();
            applier.close();
            if (frame != null)
            {
                frame.release();
                frame = null;
            }
            if (volume != null)
            {
                volume.close();
                volume = null;
            }
        }
        finally
        {
            Files.deleteIfExists(image);
        }
    }

    @Benchmark
    public void encode(final ByteCounter bytes, final Blackhole bh)
    {
        final ByteBuf encoded = encoder.encode(ALLOC, ++seq, OFFSET, source, 0, blockSize);
        try
        {
            bh.consume(encoded.writerIndex());
        }
        finally
        {
            encoded.release();
        }
        bytes.bytes += blockSize;
    }

    @Benchmark
    public void apply(final ByteCounter bytes, final Blackhole bh)
    {
        bh.consume(applyFrame(frame));
        bytes.bytes += blockSize;
    }

    /** Applies a whole frame (reader index anywhere) as the standby would: step to the type, then the body. */
    private long applyFrame(final ByteBuf whole)
    {
        whole.readerIndex(WireProtocol.TYPE_OFFSET); // where the frame decoder leaves it
        return WireProtocol.readType(whole) == WireProtocol.TYPE_ZERO ? applier.applyZero(whole)
            : applier.applyData(whole);
    }

    private void checkVolumeHoldsSource()
    {
        final ByteBuffer copy = ByteBuffer.allocateDirect(blockSize);
        volume.read(OFFSET, copy);
        if (copy.flip().mismatch(source.duplicate().clear()) != -1)
        {
            throw new IllegalStateException("applied block differs from the source (" + compression + ", "
                + content + ", " + blockSize + ")");
        }
    }

    public static void main(final String[] args) throws Exception
    {
        BenchData.run(CodecBenchmark.class, args);
    }
}
