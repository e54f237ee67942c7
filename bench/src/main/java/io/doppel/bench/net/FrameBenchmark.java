package io.doppel.bench.net;

import io.doppel.bench.BenchData;
import io.doppel.bench.ByteCounter;
import io.doppel.net.FrameDecoder;
import io.doppel.net.FrameDecoding;
import io.doppel.net.WireProtocol;
import io.doppel.pipeline.BlockEncoder;
import io.doppel.pipeline.Compression;
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

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Peer wire frames: a DATA frame built by {@link BlockEncoder} into a buffer from
 * {@link PooledByteBufAllocator#DEFAULT} (the sender's path) and split off the byte stream again by
 * {@link FrameDecoder} (the receiving event loop's path), one block per operation.
 *
 * <ul>
 *   <li>{@code encode}: {@link BlockEncoder#encode} with codec {@code none}: zero check, XXH3-128, header,
 *       raw payload copy, CRC32C; the frame is released at once.</li>
 *   <li>{@code decode}: {@link FrameDecoder}'s decode of one whole frame: length check, CRC32C over the
 *       frame, type check, a retained slice; then the DATA header is read (seq, offset, length, codec,
 *       hash) and the slice released. The frame is built once; each operation rewinds it.</li>
 *   <li>{@code roundTrip}: both, with a check that the decoded frame carries the encoded seq.</li>
 * </ul>
 *
 * <p>Why: every block that crosses the link pays these costs once on each side, and they must not
 * allocate per block (the daemon would then collect garbage in proportion to throughput). Run with
 * {@code -prof gc}: {@code gc.alloc.rate.norm} should be 0 B/op. The fork runs the benchmark threads as
 * Netty {@code FastThreadLocalThread}s, as the daemon does (see {@link io.doppel.bench.FastThreadLocalExecutor}),
 * and with Netty's leak detector off: at its default level it samples one buffer in 128 with a stack
 * trace (~12 B/op on average), a debugging aid an operator can switch off with the same property.
 *
 * <p>Results: operations (frames, one block each) per second, and {@code :bytes} in block bytes per
 * second (JMH labels it ops/s). Random content, so the payload is the whole block.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Djmh.executor=CUSTOM",
    "-Djmh.executor.class=io.doppel.bench.FastThreadLocalExecutor", "-Dio.netty.leakDetection.level=disabled"})
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
public class FrameBenchmark
{
    private static final ByteBufAllocator ALLOC = PooledByteBufAllocator.DEFAULT;
    private static final long OFFSET = 1L << 30;

    /** Block size in bytes: the smallest block, coalesced runs, and the largest frame payload. */
    @Param({"4096", "65536", "262144", "1048576"})
    public int blockSize;

    private ByteBuffer source;
    private BlockEncoder encoder;
    private FrameDecoder decoder;
    private final List<Object> out = new ArrayList<>(4);
    private long seq;
    /** Folds in every decoded hash, so reading it cannot be optimised away. */
    private long hashes;
    /** One encoded frame, built once for {@code decode}; released in tearDown. */
    private ByteBuf frame;

    @Setup(Level.Trial)
    public void setUp()
    {
        source = BenchData.directBlock(blockSize, false, 11);
        encoder = new BlockEncoder(Compression.NONE);
        decoder = new FrameDecoder();
        frame = encoder.encode(ALLOC, 1, OFFSET, source, 0, blockSize);
        final long decodedSeq = decodeAndRead(frame);
        if (decodedSeq != 1 || frame.isReadable())
        {
            throw new IllegalStateException("decoded seq " + decodedSeq + " (expected 1), " + frame.readableBytes()
                + " bytes left over");
        }
    }

    @TearDown(Level.Trial)
    public void tearDown()
    {
        System.out.println("\n# hashes folded: " + Long.toHexString(hashes));
        if (frame != null)
        {
            frame.release();
            frame = null;
        }
    }

    @Benchmark
    public void encode(final ByteCounter bytes, final Blackhole bh)
    {
        final ByteBuf encoded = encoder.encode(ALLOC, ++seq, OFFSET, source, 0, blockSize);
        bh.consume(encoded.writerIndex());
        encoded.release();
        bytes.bytes += blockSize;
    }

    @Benchmark
    public void decode(final ByteCounter bytes, final Blackhole bh)
    {
        frame.readerIndex(0);
        bh.consume(decodeAndRead(frame));
        bytes.bytes += blockSize;
    }

    @Benchmark
    public void roundTrip(final ByteCounter bytes, final Blackhole bh)
    {
        final long sent = ++seq;
        final ByteBuf encoded = encoder.encode(ALLOC, sent, OFFSET, source, 0, blockSize);
        try
        {
            final long received = decodeAndRead(encoded);
            if (received != sent)
            {
                throw new IllegalStateException("decoded seq " + received + ", sent " + sent);
            }
            bh.consume(received);
        }
        finally
        {
            encoded.release();
        }
        bytes.bytes += blockSize;
    }

    /** Decodes one DATA frame from {@code in}, reads its header and payload bounds, releases it; returns its seq. */
    private long decodeAndRead(final ByteBuf in)
    {
        FrameDecoding.decode(decoder, in, out);
        final ByteBuf got = (ByteBuf)out.get(0);
        out.clear();
        try
        {
            if (WireProtocol.readType(got) != WireProtocol.TYPE_DATA)
            {
                throw new IllegalStateException("not a DATA frame");
            }
            final long frameSeq = got.readLong();
            final long offset = got.readLong();
            final int length = got.readInt();
            final int codec = got.readUnsignedByte();
            got.skipBytes(3);
            final long hash = got.readLong() ^ got.readLong();
            if (offset != OFFSET || length != blockSize || codec != Compression.NONE.wireId()
                || got.readableBytes() != length)
            {
                throw new IllegalStateException("DATA header: offset " + offset + " length " + length + " codec "
                    + codec + " payload " + got.readableBytes());
            }
            hashes ^= hash;
            return frameSeq;
        }
        finally
        {
            got.release();
        }
    }

    public static void main(final String[] args) throws Exception
    {
        BenchData.run(FrameBenchmark.class, args);
    }
}
