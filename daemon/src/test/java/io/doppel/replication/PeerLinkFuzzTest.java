package io.doppel.replication;

import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import io.doppel.fuzz.Fuzz;
import io.doppel.net.Hello;
import io.doppel.net.WireProtocol;
import io.doppel.pipeline.BlockEncoder;
import io.doppel.pipeline.Compression;
import io.doppel.tools.MixedImage;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.zip.CRC32C;

import static io.doppel.net.WireProtocol.HEADER_BYTES;
import static io.doppel.net.WireProtocol.LENGTH_FIELD_BYTES;
import static io.doppel.net.WireProtocol.TYPE_OFFSET;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Fuzzes a running standby's peer port over real sockets: random bytes, oversized length prefixes, mutated
 * handshakes, and after a good handshake streams of DATA and ZERO frames made from the standby's own image
 * (so every frame it may rightly apply rewrites the bytes already there) with one frame broken: bits
 * flipped (checksum left wrong), or a field changed and the checksum made right again (type, flags, codec,
 * length, hash, payload; offsets and lengths only to values outside the volume). The standby must close
 * the link or answer correctly, its image must not change, no thread may die and no exception may reach
 * only Netty's log, and a primary that asks for hash lists without reading them must not make it buffer
 * them without bound.
 */
class PeerLinkFuzzTest
{
    private static final long SIZE = 16L << 20;
    private static final int BLOCK = 4096;

    @TempDir
    static Path dir;

    private static TestCluster cluster;
    private static DoppelNode beta;
    private static String hashBefore;
    private static Fuzz.Watch watch;

    @BeforeAll
    static void startStandby() throws Exception
    {
        watch = new Fuzz.Watch();
        cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.betaImage, SIZE, 4);
        hashBefore = MixedImage.hash(cluster.betaImage);
        beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
    }

    @AfterAll
    static void stop() throws Exception
    {
        try
        {
            beta.close();
            assertThat(MixedImage.hash(cluster.betaImage)).as("standby image untouched").isEqualTo(hashBefore);
        }
        finally
        {
            watch.close();
        }
    }

    @AfterEach
    void standbyAliveAndImageUntouched() throws Exception
    {
        try (Socket s = Fuzz.connect(cluster.betaListen))
        {
            s.getOutputStream().write(Fuzz.bytes(hello()));
            final ByteBuf reply = readFrame(new DataInputStream(s.getInputStream()));
            assertThat(reply).as("the standby still answers a good handshake").isNotNull();
            assertThat(WireProtocol.typeName(reply.getUnsignedByte(TYPE_OFFSET))).isEqualTo("HELLO_OK");
        }
        beta.standby("vm1").volume().flush();
        assertThat(MixedImage.hash(cluster.betaImage)).as("standby image untouched").isEqualTo(hashBefore);
        assertThat(watch.problems()).as("dead threads or exceptions seen only by Netty's log").isEmpty();
    }

    // ---------------------------------------------------------------- before the handshake

    @Test
    void randomBytesCloseTheLinkWithoutAReply() throws Exception
    {
        final SplittableRandom random = new SplittableRandom(Fuzz.SEED + 10);
        for (int i = 0; i < Fuzz.iterations(60); i++)
        {
            final byte[] junk = new byte[1 + random.nextInt(random.nextBoolean() ? 64 : 70_000)];
            random.nextBytes(junk);
            try (Socket s = Fuzz.connect(cluster.betaListen))
            {
                Fuzz.writeQuietly(s, junk);
                // A random length prefix may ask for more bytes than were sent: then the link waits (as it
                // must, for a frame on its way) until the heartbeat timeout; do not wait for that here.
                final long length = junk.length >= 4 ? ByteBuffer.wrap(junk).getInt() & 0xffffffffL : 0;
                if (junk.length >= 4 && length >= 8 && length <= WireProtocol.MAX_LENGTH && 4 + length > junk.length)
                {
                    continue;
                }
                if (junk.length < 4)
                {
                    continue;
                }
                assertThat(Fuzz.readUntilClosed(s, 5_000, "standby")).as("case %d (seed %d): bytes sent back", i, Fuzz.SEED + 10)
                    .isZero();
            }
        }
    }

    @Test
    void oversizedLengthPrefixesAreRefusedBeforeTheBodyIsBuffered() throws Exception
    {
        for (final long length : new long[] {WireProtocol.MAX_LENGTH + 1L, 0x7fffffffL, 0x80000000L, 0xffffffffL,
            2L << 30 >>> 1})
        {
            try (Socket s = Fuzz.connect(cluster.betaListen))
            {
                final OutputStream out = s.getOutputStream();
                out.write(ByteBuffer.allocate(4).putInt((int)length).array());
                // Then the body it announces: the standby must hang up long before 64 MiB of it are sent.
                final byte[] chunk = new byte[64 << 10];
                long sent = 0;
                try
                {
                    while (sent < (64L << 20))
                    {
                        out.write(chunk);
                        sent += chunk.length;
                    }
                }
                catch (final IOException e)
                {
                    // the standby closed: what we want
                }
                assertThat(sent).as("body bytes of a %d-byte frame the standby took before closing", length)
                    .isLessThan(32L << 20);
                assertThat(Fuzz.readUntilClosed(s, 5_000, "standby")).isZero();
            }
        }
    }

    @Test
    void mutatedHandshakesAreRefusedOrAnswered() throws Exception
    {
        final byte[] valid = Fuzz.bytes(hello());
        final SplittableRandom random = new SplittableRandom(Fuzz.SEED + 11);
        int refused = 0;
        for (int i = 0; i < Fuzz.iterations(120); i++)
        {
            final boolean fixChecksum = random.nextInt(3) != 0;
            final byte[] input = valid.clone();
            final int at = LENGTH_FIELD_BYTES + (fixChecksum ? 4 : 0) + random.nextInt(input.length
                - LENGTH_FIELD_BYTES - (fixChecksum ? 4 : 0));
            if (random.nextBoolean())
            {
                input[at] ^= (byte)(1 << random.nextInt(8));
            }
            else
            {
                input[at] = (byte)random.nextInt(256);
            }
            if (fixChecksum)
            {
                fixChecksum(input);
            }
            final String what = "case " + i + " (seed " + (Fuzz.SEED + 11) + ", byte " + at + ", checksum "
                + (fixChecksum ? "fixed" : "left") + ")";
            try (Socket s = Fuzz.connect(cluster.betaListen))
            {
                Fuzz.writeQuietly(s, input);
                final DataInputStream in = new DataInputStream(s.getInputStream());
                final ByteBuf reply = readFrame(in);
                if (reply == null)
                {
                    refused++; // closed without a word: a broken frame or an unreadable handshake
                    continue;
                }
                final String type = WireProtocol.typeName(reply.getUnsignedByte(TYPE_OFFSET));
                if (type.equals("REJECT"))
                {
                    refused++;
                    assertThat(Fuzz.readUntilClosed(s, 5_000, "standby")).as("%s: bytes after the REJECT", what).isZero();
                }
                else
                {
                    assertThat(type).as(what).isEqualTo("HELLO_OK"); // a field the standby does not check
                }
            }
        }
        assertThat(refused).as("most mutated handshakes are refused").isGreaterThan(Fuzz.iterations(120) / 2);
    }

    // ---------------------------------------------------------------- after the handshake

    @Test
    void brokenFramesAfterTheHandshakeCloseTheLinkAndWriteNothing() throws Exception
    {
        final SplittableRandom random = new SplittableRandom(Fuzz.SEED + 12);
        final BlockEncoder[] encoders = {new BlockEncoder(Compression.NONE), new BlockEncoder(Compression.LZ4),
            new BlockEncoder(Compression.ZSTD)};
        int closed = 0;
        final int cases = Fuzz.iterations(120);
        for (int i = 0; i < cases; i++)
        {
            final List<byte[]> frames = new ArrayList<>();
            final int n = 1 + random.nextInt(6);
            for (int k = 0; k < n; k++)
            {
                frames.add(identityFrame(random, encoders[random.nextInt(encoders.length)], k));
            }
            final int victim = random.nextInt(frames.size());
            final String mutation = breakFrame(random, frames.get(victim));
            final String what = "case " + i + " (seed " + (Fuzz.SEED + 12) + ", frame " + victim + " of " + n + ": "
                + mutation + ")";
            try (Socket s = Fuzz.connect(cluster.betaListen))
            {
                final OutputStream out = s.getOutputStream();
                final DataInputStream in = new DataInputStream(s.getInputStream());
                out.write(Fuzz.bytes(hello()));
                final ByteBuf ok = readFrame(in);
                assertThat(ok).as("%s: HELLO_OK", what).isNotNull();
                assertThat(WireProtocol.typeName(ok.getUnsignedByte(TYPE_OFFSET))).isEqualTo("HELLO_OK");
                final ByteArrayOutputStream all = new ByteArrayOutputStream();
                for (final byte[] f : frames)
                {
                    all.write(f);
                }
                all.write(seqFrame(WireProtocol.TYPE_FLUSH, 999));
                Fuzz.writeQuietly(s, all.toByteArray());
                // Either the link closes, or the mutation left a frame the standby may take and it answers
                // the FLUSH: ACK then FLUSHED.
                if (awaitFlushedOrClose(in, what))
                {
                    closed++;
                }
            }
        }
        assertThat(closed).as("most broken frames close the link").isGreaterThan(cases / 2);
    }

    /**
     * A DATA or ZERO frame for a random range of the standby's image holding the bytes already there, so
     * applying it changes nothing.
     */
    private static byte[] identityFrame(final SplittableRandom random, final BlockEncoder encoder, final long seq)
        throws IOException
    {
        final int blocks = 1 + random.nextInt(random.nextInt(4) == 0 ? 256 : 8);
        final long offset = (long)random.nextInt((int)(SIZE / BLOCK) - blocks + 1) * BLOCK;
        final int length = blocks * BLOCK;
        final ByteBuffer src = ByteBuffer.allocateDirect(length);
        try (FileChannel ch = FileChannel.open(cluster.betaImage, StandardOpenOption.READ))
        {
            while (src.hasRemaining())
            {
                if (ch.read(src, offset + src.position()) < 0)
                {
                    throw new EOFException();
                }
            }
        }
        final ByteBuf frame = encoder.encode(UnpooledByteBufAllocator.DEFAULT, seq, offset, src, 0, length);
        return Fuzz.bytes(frame);
    }

    /** Breaks {@code frame} in place; returns what was done. */
    private static String breakFrame(final SplittableRandom random, final byte[] frame)
    {
        final ByteBuffer b = ByteBuffer.wrap(frame);
        final int type = frame[TYPE_OFFSET] & 0xff;
        final int body = HEADER_BYTES;
        switch (random.nextInt(8))
        {
            case 0:
            {
                // not in the length field: a longer length would leave the standby waiting for the rest
                // (the decoder tests cover that); the checksum fails wherever else a bit flips
                final int at = LENGTH_FIELD_BYTES + random.nextInt(frame.length - LENGTH_FIELD_BYTES);
                frame[at] ^= (byte)(1 << random.nextInt(8));
                return "bit flipped at " + at + ", checksum left";
            }
            case 1:
            {
                final int t = random.nextBoolean() ? random.nextInt(256) : 1 + random.nextInt(WireProtocol.TYPE_MAX);
                frame[TYPE_OFFSET] = (byte)t;
                fixChecksum(frame);
                return "type " + WireProtocol.typeName(type) + " -> " + WireProtocol.typeName(t);
            }
            case 2:
            {
                // offset (both DATA and ZERO have it at body + 8) outside the volume
                final long[] bad = {-1, -BLOCK, SIZE, SIZE - 1, Long.MIN_VALUE, Long.MAX_VALUE, SIZE + BLOCK};
                final long v = bad[random.nextInt(bad.length)];
                b.putLong(body + 8, v);
                fixChecksum(frame);
                return "offset -> " + v;
            }
            case 3:
                if (type == WireProtocol.TYPE_ZERO)
                {
                    final long[] bad = {0, -1, SIZE + 1, Long.MAX_VALUE, Long.MIN_VALUE};
                    final long zl = bad[random.nextInt(bad.length)];
                    b.putLong(body + 16, zl);
                    fixChecksum(frame);
                    return "ZERO length -> " + zl;
                }
                final int len = b.getInt(body + 16);
                final int[] lengths = {0, -1, len - 1, len + 1, len * 2, WireProtocol.MAX_PAYLOAD_BYTES + 1,
                    Integer.MAX_VALUE, random.nextInt()};
                final int dl = lengths[random.nextInt(lengths.length)];
                b.putInt(body + 16, dl);
                fixChecksum(frame);
                return "DATA length " + len + " -> " + dl;
            case 4:
                if (type == WireProtocol.TYPE_DATA)
                {
                    final int codec = frame[body + 20] & 0xff;
                    final int c = random.nextBoolean() ? (codec + 1 + random.nextInt(2)) % 3 : 3 + random.nextInt(253);
                    frame[body + 20] = (byte)c;
                    fixChecksum(frame);
                    return "codec " + codec + " -> " + c;
                }
                return truncate(random, frame, b);
            case 5:
                if (type == WireProtocol.TYPE_DATA)
                {
                    final int at = body + 24 + random.nextInt(frame.length - body - 24);
                    frame[at] ^= (byte)(1 << random.nextInt(8));
                    fixChecksum(frame);
                    return (at < body + 40 ? "hash" : "payload") + " bit flipped at " + at + ", checksum fixed";
                }
                return truncate(random, frame, b);
            case 6:
                return truncate(random, frame, b);
            default:
            {
                final long lengthField = random.nextBoolean() ? random.nextInt(WireProtocol.MIN_LENGTH)
                    : WireProtocol.MAX_LENGTH + 1L + random.nextInt(1 << 30);
                b.putInt(0, (int)lengthField);
                return "length field -> " + lengthField;
            }
        }
    }

    /** Shortens the frame's body and its length field, checksum fixed: a frame too short for its type. */
    private static String truncate(final SplittableRandom random, final byte[] frame, final ByteBuffer b)
    {
        final int bodyLength = frame.length - HEADER_BYTES;
        final int keep = random.nextInt(Math.min(bodyLength, 40));
        b.putInt(0, WireProtocol.MIN_LENGTH + keep);
        final byte[] cut = java.util.Arrays.copyOf(frame, HEADER_BYTES + keep);
        fixChecksum(cut);
        System.arraycopy(cut, 0, frame, 0, cut.length);
        // the rest of the array stays: it follows as garbage, which the decoder must also refuse
        return "body cut to " + keep + " of " + bodyLength + " bytes";
    }

    /** Reads frames until FLUSHED (returns false: the link stayed up) or the close (returns true). */
    private static boolean awaitFlushedOrClose(final DataInputStream in, final String what) throws IOException
    {
        while (true)
        {
            final ByteBuf f = readFrame(in);
            if (f == null)
            {
                return true;
            }
            final int type = f.getUnsignedByte(TYPE_OFFSET);
            assertThat(type).as("%s: frame type from the standby", what).isIn(WireProtocol.TYPE_ACK,
                WireProtocol.TYPE_FLUSHED, WireProtocol.TYPE_PING, WireProtocol.TYPE_HASH_LIST, WireProtocol.TYPE_REJECT);
            if (type == WireProtocol.TYPE_FLUSHED)
            {
                return false;
            }
        }
    }

    // ---------------------------------------------------------------- memory

    /**
     * A "primary" that asks for hash lists and never reads them: each 24-byte HASH_REQUEST makes a 64 KiB
     * list here, so unread lists must not pile up in the standby's memory: it must hang up.
     */
    @Test
    void hashRequestsWhoseListsAreNeverReadDoNotPileUp() throws Exception
    {
        final int requests = 400; // 400 x 64 KiB = 25 MiB of lists
        try (Socket s = new Socket())
        {
            s.setReceiveBufferSize(64 << 10);
            s.connect(new java.net.InetSocketAddress(InetAddress.getLoopbackAddress(), cluster.betaListen));
            s.setSoTimeout(10_000);
            final OutputStream out = s.getOutputStream();
            final DataInputStream in = new DataInputStream(s.getInputStream());
            out.write(Fuzz.bytes(hello()));
            assertThat(readFrame(in)).isNotNull();
            final ByteArrayOutputStream all = new ByteArrayOutputStream();
            for (int i = 0; i < requests; i++)
            {
                final ByteBuf buf = Unpooled.buffer();
                final int start = WireProtocol.beginFrame(buf, WireProtocol.TYPE_HASH_REQUEST);
                buf.writeLong(0).writeInt((int)(SIZE / BLOCK));
                WireProtocol.endFrame(buf, start, new CRC32C());
                all.write(Fuzz.bytes(buf));
            }
            final VolumeState state = beta.standby("vm1").state();
            final long before = state.bytesReceived();
            Fuzz.writeQuietly(s, all.toByteArray());
            // We do not read while the standby hashes: wait until it took every request or dropped the link.
            final long deadline = System.nanoTime() + 30_000_000_000L;
            long seen = -1;
            int still = 0;
            while (System.nanoTime() < deadline && state.connected()
                && state.bytesReceived() - before < all.size() && still < 40)
            {
                Thread.sleep(50);
                final long now = state.bytesReceived();
                still = now == seen ? still + 1 : 0; // two seconds without progress: the link is down
                seen = now;
            }
            Thread.sleep(200);
            final long received = Fuzz.readUntilClosed(s, 10_000, "standby");
            assertThat(received).as("bytes of hash lists the standby kept for a peer that did not read them")
                .isLessThan(18L << 20);
        }
    }

    // ---------------------------------------------------------------- helpers

    private static ByteBuf hello()
    {
        final ByteBuf buf = Unpooled.buffer();
        Hello.of(WireProtocol.ROLE_PRIMARY, SIZE, BLOCK, "alpha", "beta", "vm1").encode(buf, WireProtocol.TYPE_HELLO,
            new CRC32C());
        return buf;
    }

    private static byte[] seqFrame(final int type, final long value)
    {
        return Fuzz.bytes(WireProtocol.seqFrame(UnpooledByteBufAllocator.DEFAULT, type, value, new CRC32C()));
    }

    static void fixChecksum(final byte[] frame)
    {
        final ByteBuf buf = Unpooled.wrappedBuffer(frame);
        final long length = buf.getUnsignedInt(0);
        if (length < WireProtocol.MIN_LENGTH || LENGTH_FIELD_BYTES + length > frame.length)
        {
            return;
        }
        buf.setInt(LENGTH_FIELD_BYTES, WireProtocol.checksum(buf, TYPE_OFFSET,
            (int)length - WireProtocol.CHECKSUM_BYTES, new CRC32C()));
    }

    /** One frame (whole, from the length field), or null when the link closed. */
    private static ByteBuf readFrame(final DataInputStream in) throws IOException
    {
        try
        {
            final int length = in.readInt();
            assertThat(length).as("frame length from the standby").isBetween(WireProtocol.MIN_LENGTH,
                WireProtocol.MAX_LENGTH);
            final byte[] rest = new byte[length];
            in.readFully(rest);
            return Unpooled.buffer(4 + length).writeInt(length).writeBytes(rest);
        }
        catch (final EOFException | java.net.SocketException e)
        {
            return null;
        }
    }
}
