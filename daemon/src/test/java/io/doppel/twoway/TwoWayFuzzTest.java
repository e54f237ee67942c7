package io.doppel.twoway;

import io.doppel.fuzz.Fuzz;
import io.doppel.nbd.NbdTestSupport;
import io.doppel.net.Hello;
import io.doppel.net.WireProtocol;
import io.doppel.pipeline.BlockEncoder;
import io.doppel.pipeline.Compression;
import io.doppel.tools.MixedImage;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.zip.CRC32C;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The two-way receiver against a peer that breaks the VERSION rules (protocol.md, section 12.1): a DATA or ZERO
 * without a VERSION, two VERSIONs in a row, a wrong slot count, a count out of range or past the volume, an
 * unaligned or outside offset, a truncated entry list, a block run that does not match its VERSION, a frame a
 * two-way link never carries. Every case must close the link and write nothing; the node keeps running. A
 * well-formed pair at the end is applied (the control: the cases fail for their fault, not the handshake).
 */
class TwoWayFuzzTest
{
    private static final long SIZE = 4L << 20;
    private static final int BLOCK = 4096;

    @TempDir
    Path dir;

    @Test
    void malformedVersionRunsCloseTheLinkAndWriteNothing() throws Exception
    {
        final TwoWayPair pair = new TwoWayPair(dir, SIZE, BLOCK);
        try (pair; Fuzz.Watch watch = new Fuzz.Watch())
        {
            pair.beta = pair.startNode("beta"); // alpha is never started: this test dials as alpha
            final TwoWayVolume beta = pair.b();
            beta.flush();
            final String before = MixedImage.hash(pair.image("beta"));
            final SplittableRandom random = new SplittableRandom(Fuzz.SEED);
            final BlockEncoder encoder = new BlockEncoder(Compression.LZ4);
            final List<String> cases = new ArrayList<>();
            for (int i = 0; i < Fuzz.iterations(40); i++)
            {
                final int kind = i % 10;
                final long block = random.nextInt((int)(SIZE / BLOCK) - 8);
                final byte[] bytes = new byte[2 * BLOCK];
                random.nextBytes(bytes);
                final List<byte[]> frames = new ArrayList<>();
                switch (kind)
                {
                    case 0 -> frames.add(data(encoder, block, bytes, 1));
                    case 1 -> frames.addAll(List.of(version(block, 1, 2), version(block, 1, 2)));
                    case 2 -> frames.addAll(List.of(version(block, 1, 3), data(encoder, block, bytes, 1)));
                    case 3 -> frames.addAll(List.of(version(block, random.nextBoolean() ? 0 : 257, 2),
                        data(encoder, block, bytes, 1)));
                    case 4 -> frames.addAll(List.of(version(SIZE / BLOCK - 1, 2, 2), data(encoder, block, bytes, 1)));
                    case 5 -> frames.addAll(List.of(versionAt(block * BLOCK + 1 + random.nextInt(BLOCK - 1), 1),
                        data(encoder, block, bytes, 1)));
                    case 6 -> frames.addAll(List.of(truncated(block, 2 + random.nextInt(5)), data(encoder, block, bytes, 1)));
                    case 7 -> frames.addAll(List.of(version(block, 2, 2), data(encoder, block, bytes, 1)));
                    case 8 -> frames.addAll(List.of(version(block, 1, 2), data(encoder, block + 1, bytes, 1)));
                    default -> frames.add(Fuzz.bytes(WireProtocol.seqFrame(UnpooledByteBufAllocator.DEFAULT,
                        WireProtocol.TYPE_HASH_REQUEST, 0, new CRC32C())));
                }
                cases.add("case " + i + " kind " + kind);
                try (Socket s = Fuzz.connect(pair.betaListen))
                {
                    handshake(s);
                    for (final byte[] f : frames)
                    {
                        Fuzz.writeQuietly(s, f);
                    }
                    Fuzz.readUntilClosed(s, 10_000, "two-way node (" + cases.get(cases.size() - 1) + ")");
                }
            }
            assertThat(beta.status().appliedBlocks.get() + beta.status().ignoredBlocks.get()).as("nothing resolved")
                .isZero();
            beta.flush();
            assertThat(MixedImage.hash(pair.image("beta"))).as("image untouched by " + cases.size() + " bad runs")
                .isEqualTo(before);

            // The control: a well-formed run of two blocks is applied.
            try (Socket s = Fuzz.connect(pair.betaListen))
            {
                handshake(s);
                final byte[] bytes = new byte[2 * BLOCK];
                random.nextBytes(bytes);
                s.getOutputStream().write(version(8, 2, 2));
                s.getOutputStream().write(data(encoder, 8, bytes, 2));
                NbdTestSupport.awaitTrue(() -> beta.status().appliedBlocks.get() == 2, 20, () -> "the good run was not applied");
                final ByteBuffer on = ByteBuffer.allocate(2 * BLOCK);
                beta.read(8L * BLOCK, on);
                assertThat(on.array()).isEqualTo(bytes);
            }
            encoder.close();
            assertThat(watch.problems()).isEmpty();
        }
    }

    private static void handshake(final Socket s) throws IOException
    {
        final ByteBuf hello = Unpooled.buffer();
        new Hello(WireProtocol.MAGIC, WireProtocol.VERSION_TWO_WAY, WireProtocol.VERSION_MAX, WireProtocol.ROLE_TWO_WAY,
            SIZE, BLOCK, "alpha", "beta", "vm1").encode(hello, WireProtocol.TYPE_HELLO, new CRC32C());
        final OutputStream out = s.getOutputStream();
        out.write(Fuzz.bytes(hello));
        final DataInputStream in = new DataInputStream(s.getInputStream());
        final int length = in.readInt();
        final byte[] rest = new byte[length];
        in.readFully(rest);
        assertThat(rest[4]).as("HELLO_OK").isEqualTo((byte)WireProtocol.TYPE_HELLO_OK);
    }

    /** A VERSION for {@code count} blocks from {@code block}, with {@code slots} counters each. */
    private static byte[] version(final long block, final int count, final int slots)
    {
        return versionFrame(block * BLOCK, count, slots, count);
    }

    private static byte[] versionAt(final long offset, final int count)
    {
        return versionFrame(offset, count, 2, count);
    }

    /** Announces {@code count} entries but carries one. */
    private static byte[] truncated(final long block, final int count)
    {
        return versionFrame(block * BLOCK, count, 2, 1);
    }

    private static byte[] versionFrame(final long offset, final int count, final int slots, final int entries)
    {
        final ByteBuf f = Unpooled.buffer();
        final int begin = WireProtocol.beginFrame(f, WireProtocol.TYPE_VERSION);
        f.writeLong(offset).writeShort(count).writeByte(slots).writeZero(1);
        for (int i = 0; i < entries; i++)
        {
            f.writeLong(System.currentTimeMillis() << 20);
            for (int k = 0; k < slots; k++)
            {
                f.writeInt(k == 0 ? 1 : 0);
            }
        }
        WireProtocol.endFrame(f, begin, new CRC32C());
        return Fuzz.bytes(f);
    }

    private static byte[] data(final BlockEncoder encoder, final long block, final byte[] bytes, final int blocks)
    {
        final ByteBuffer src = ByteBuffer.allocateDirect(blocks * BLOCK).put(bytes, 0, blocks * BLOCK).flip();
        return Fuzz.bytes(encoder.encode(UnpooledByteBufAllocator.DEFAULT, 1, block * BLOCK, src, 0, blocks * BLOCK));
    }
}
