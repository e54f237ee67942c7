package io.doppel.replication;

import io.doppel.config.ConfigLoader;
import io.doppel.daemon.DoppelNode;
import io.doppel.net.Hello;
import io.doppel.net.WireProtocol;
import io.doppel.tools.MixedImage;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.file.Path;
import java.util.SplittableRandom;
import java.util.zip.CRC32C;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A standby node against a hand-made peer on a raw socket: wrong versions, sizes, block sizes and
 * names are refused with a REJECT that says why; garbage and silence close the link; nothing of it
 * reaches the volume.
 */
class StandbyLinkTest
{
    private static final long SIZE = 16L << 20;

    @TempDir
    Path dir;

    private TestCluster cluster;
    private DoppelNode beta;
    private String hashBefore;

    @BeforeEach
    void startStandby() throws Exception
    {
        cluster = new TestCluster(dir, SIZE);
        MixedImage.create(cluster.betaImage, SIZE, 4);
        hashBefore = MixedImage.hash(cluster.betaImage);
        beta = DoppelNode.start(ConfigLoader.load(cluster.betaConfig()));
    }

    @AfterEach
    void stop() throws Exception
    {
        beta.close();
        assertThat(MixedImage.hash(cluster.betaImage)).as("standby image untouched").isEqualTo(hashBefore);
    }

    @Test
    void unknownProtocolVersionIsRefusedNamingTheSupportedRange() throws Exception
    {
        final Hello hello = new Hello(WireProtocol.MAGIC, 7, 7, WireProtocol.ROLE_PRIMARY, SIZE, 4096, "alpha", "beta",
            "vm1");
        assertThat(handshake(hello)).isEqualTo("protocol version 7 not supported: this node speaks 2..4");
    }

    @Test
    void aTwoWayHelloForAOneWayVolumeIsRefusedNamingBothModes() throws Exception
    {
        final Hello hello = new Hello(WireProtocol.MAGIC, WireProtocol.VERSION_TWO_WAY, WireProtocol.VERSION_MAX,
            WireProtocol.ROLE_TWO_WAY, SIZE, 4096, "alpha", "beta", "vm1");
        assertThat(handshake(hello)).isEqualTo("volume vm1: peer \"alpha\" has it as two-way, this node as standby"
            + " (mode = \"two-way\" must be set on both nodes, or on neither)");
    }

    @Test
    void sizeBlockSizeNameAndRoleMismatchesAreRefused() throws Exception
    {
        assertThat(handshake(Hello.of(WireProtocol.ROLE_PRIMARY, SIZE * 2, 4096, "alpha", "beta", "vm1")))
            .contains("size mismatch").contains(String.valueOf(SIZE * 2)).contains(String.valueOf(SIZE));
        assertThat(handshake(Hello.of(WireProtocol.ROLE_PRIMARY, SIZE, 65536, "alpha", "beta", "vm1")))
            .contains("block-size mismatch").contains("65536").contains("4096");
        assertThat(handshake(Hello.of(WireProtocol.ROLE_PRIMARY, SIZE, 4096, "mallory", "beta", "vm1")))
            .contains("\"mallory\"").contains("\"alpha\"");
        assertThat(handshake(Hello.of(WireProtocol.ROLE_STANDBY, SIZE, 4096, "alpha", "beta", "vm1")))
            .contains("expected primary");
        assertThat(handshake(Hello.of(WireProtocol.ROLE_PRIMARY, SIZE, 4096, "alpha", "beta", "vm9")))
            .contains("no volume named \"vm9\"");
    }

    @Test
    void garbageAndDataBeforeTheHandshakeCloseTheLink() throws Exception
    {
        final byte[] garbage = new byte[64 << 10];
        new SplittableRandom(1).nextBytes(garbage);
        try (Socket s = connect())
        {
            s.getOutputStream().write(garbage);
            assertThat(readUntilClosed(s.getInputStream())).isLessThan(1024);
        }
        // A well-formed DATA frame without a handshake first.
        try (Socket s = connect())
        {
            final ByteBuf frame = Unpooled.buffer();
            final int start = WireProtocol.beginFrame(frame, WireProtocol.TYPE_ZERO);
            frame.writeLong(1).writeLong(0).writeLong(SIZE);
            WireProtocol.endFrame(frame, start, new CRC32C());
            s.getOutputStream().write(bytes(frame));
            assertThat(readUntilClosed(s.getInputStream())).isZero();
        }
    }

    @Test
    void silentPeerIsDroppedAfterTheHeartbeatTimeout() throws Exception
    {
        try (Socket s = connect())
        {
            final ByteBuf buf = Unpooled.buffer();
            Hello.of(WireProtocol.ROLE_PRIMARY, SIZE, 4096, "alpha", "beta", "vm1").encode(buf, WireProtocol.TYPE_HELLO,
                new CRC32C());
            s.getOutputStream().write(bytes(buf));
            final long start = System.nanoTime();
            s.setSoTimeout(20_000);
            readUntilClosed(s.getInputStream()); // HELLO_OK, a few PINGs, then the close
            final double seconds = (System.nanoTime() - start) / 1e9;
            assertThat(seconds).as("closed after the 5 s heartbeat timeout").isBetween(4.0, 15.0);
        }
    }

    /** Sends a HELLO and returns the REJECT message (failing on anything else), then expects the close. */
    private String handshake(final Hello hello) throws IOException
    {
        try (Socket s = connect())
        {
            final ByteBuf buf = Unpooled.buffer();
            hello.encode(buf, WireProtocol.TYPE_HELLO, new CRC32C());
            s.getOutputStream().write(bytes(buf));
            final DataInputStream in = new DataInputStream(s.getInputStream());
            final int length = in.readInt();
            final byte[] rest = new byte[length];
            in.readFully(rest);
            final ByteBuf frame = Unpooled.wrappedBuffer(rest).skipBytes(WireProtocol.CHECKSUM_BYTES);
            final int type = WireProtocol.readType(frame);
            assertThat(WireProtocol.typeName(type)).isEqualTo("REJECT");
            final String message = Hello.decodeReject(frame);
            assertThat(readUntilClosed(in)).isZero();
            return message;
        }
    }

    private Socket connect() throws IOException
    {
        final Socket s = new Socket(InetAddress.getLoopbackAddress(), cluster.betaListen);
        s.setSoTimeout(10_000);
        return s;
    }

    private static byte[] bytes(final ByteBuf buf)
    {
        final byte[] b = new byte[buf.readableBytes()];
        buf.readBytes(b);
        return b;
    }

    /** Reads until the peer closes; returns the bytes read. Fails if the peer keeps the link open. */
    private static int readUntilClosed(final InputStream in) throws IOException
    {
        int total = 0;
        final byte[] chunk = new byte[4096];
        try
        {
            int n;
            while ((n = in.read(chunk)) >= 0)
            {
                total += n;
            }
        }
        catch (final SocketTimeoutException e)
        {
            throw new AssertionError("the standby kept the link open");
        }
        catch (final EOFException | java.net.SocketException e)
        {
            // reset by peer counts as closed
        }
        return total;
    }

}
