package io.doppel.net;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.function.Function;
import java.util.zip.CRC32C;

import static io.doppel.net.WireProtocol.ROLE_PRIMARY;
import static io.doppel.net.WireProtocol.ROLE_STANDBY;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class HelloTest
{
    private static final long SIZE = 10L << 30;
    private static final int BLOCK = 4096;

    /** The primary "alpha" says hello to the standby "beta" about volume "vm1". */
    private static Hello fromAlpha()
    {
        return Hello.of(ROLE_PRIMARY, SIZE, BLOCK, "alpha", "beta", "vm1");
    }

    /** Encodes as a frame of {@code type}, passes it through a FrameDecoder and hands the body to {@code read}. */
    private static <T> T throughDecoder(final Hello hello, final int type, final Function<ByteBuf, T> read)
    {
        final ByteBuf buf = Unpooled.buffer();
        hello.encode(buf, type, new CRC32C());
        return decodeFrame(buf, type, read);
    }

    private static <T> T decodeFrame(final ByteBuf buf, final int type, final Function<ByteBuf, T> read)
    {
        final EmbeddedChannel ch = new EmbeddedChannel(new FrameDecoder());
        try
        {
            assertThat(ch.writeInbound(buf)).isTrue();
            final ByteBuf frame = ch.readInbound();
            try
            {
                assertThat((int)frame.readUnsignedByte()).isEqualTo(type);
                frame.skipBytes(3);
                return read.apply(frame);
            }
            finally
            {
                frame.release();
            }
        }
        finally
        {
            ch.finishAndReleaseAll();
        }
    }

    // ------------------------------------------------------------------ round trip

    @Test
    void roundTripThroughTheFrameDecoder()
    {
        final Hello hello = fromAlpha();
        assertThat(hello.magic()).isEqualTo(WireProtocol.MAGIC);
        assertThat(hello.versionMin()).isEqualTo(WireProtocol.VERSION_MIN);
        assertThat(hello.versionMax()).isEqualTo(WireProtocol.VERSION_MAX);
        final Hello decoded = throughDecoder(hello, WireProtocol.TYPE_HELLO, body ->
        {
            final Hello h = Hello.decode(body);
            assertThat(body.isReadable()).as("whole body consumed").isFalse();
            return h;
        });
        assertThat(decoded).isEqualTo(hello);

        final Hello reply = Hello.of(ROLE_STANDBY, SIZE, BLOCK, "beta", "alpha", "vm1")
            .withGenerations(0x1234_5678_9abc_def0L, -1L, 2, Hello.FLAG_UNCLEAN);
        final Hello back = throughDecoder(reply, WireProtocol.TYPE_HELLO_OK, Hello::decode);
        assertThat(back).isEqualTo(reply);
        assertThat(back.currentGen()).isEqualTo(0x1234_5678_9abc_def0L);
        assertThat(back.bitmapGen()).isEqualTo(-1L);
        assertThat(back.disk()).isEqualTo(2);
        assertThat(back.flags()).isEqualTo(Hello.FLAG_UNCLEAN);
    }

    @Test
    void unusualValuesRoundTrip()
    {
        final String longName = "n".repeat(WireProtocol.MAX_NAME_BYTES);
        final Hello hello = new Hello(WireProtocol.MAGIC, 0xFFFF, 0xFFFF, 0xFF, Long.MAX_VALUE, 1 << 20,
            "\u00e9t\u00e9-\u65e5", "", longName);
        assertThat(throughDecoder(hello, WireProtocol.TYPE_HELLO, Hello::decode)).isEqualTo(hello);
    }

    @Test
    void namesLongerThan255BytesAreRefusedWhenEncoding()
    {
        final Hello hello = Hello.of(ROLE_PRIMARY, SIZE, BLOCK, "alpha", "beta", "\u00e9".repeat(128)); // 256 bytes
        final ByteBuf buf = Unpooled.buffer();
        try
        {
            assertThatThrownBy(() -> hello.encode(buf, WireProtocol.TYPE_HELLO, new CRC32C()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("256 bytes");
        }
        finally
        {
            buf.release();
        }
    }

    // ------------------------------------------------------------------ mismatch

    @Test
    void matchingHelloIsAccepted()
    {
        assertThat(fromAlpha().mismatch("beta", "alpha", ROLE_PRIMARY, SIZE, BLOCK)).isNull();
        assertThat(fromAlpha().agreedVersion()).isEqualTo(WireProtocol.VERSION_MAX);
    }

    @Test
    void sizeMismatchMentionsBothSizes()
    {
        assertThat(fromAlpha().mismatch("beta", "alpha", ROLE_PRIMARY, SIZE - 4096, BLOCK))
            .contains("vm1")
            .contains("size mismatch")
            .contains(String.valueOf(SIZE))
            .contains(String.valueOf(SIZE - 4096));
    }

    @Test
    void blockSizeMismatchMentionsBothBlockSizes()
    {
        assertThat(fromAlpha().mismatch("beta", "alpha", ROLE_PRIMARY, SIZE, 8192))
            .contains("block-size mismatch")
            .contains("4096")
            .contains("8192");
    }

    @Test
    void wrongNodeNameIsNamed()
    {
        assertThat(fromAlpha().mismatch("beta", "gamma", ROLE_PRIMARY, SIZE, BLOCK))
            .contains("\"alpha\"")
            .contains("\"gamma\"");
    }

    @Test
    void wrongTargetIsNamed()
    {
        assertThat(fromAlpha().mismatch("delta", "alpha", ROLE_PRIMARY, SIZE, BLOCK))
            .contains("wanted node \"beta\"")
            .contains("\"delta\"");
    }

    @Test
    void sameRoleIsRefused()
    {
        assertThat(fromAlpha().mismatch("beta", "alpha", ROLE_STANDBY, SIZE, BLOCK))
            .contains("is primary")
            .contains("expected standby")
            .contains("same role");
        assertThat(Hello.roleName(ROLE_PRIMARY)).isEqualTo("primary");
        assertThat(Hello.roleName(ROLE_STANDBY)).isEqualTo("standby");
        assertThat(Hello.roleName(9)).isEqualTo("role 9");
    }

    @Test
    void unsupportedVersionIsReportedWithBothVersions()
    {
        final Hello v7 = new Hello(WireProtocol.MAGIC, 7, 7, ROLE_PRIMARY, SIZE, BLOCK, "alpha", "beta", "vm1");
        assertThat(v7.agreedVersion()).isEqualTo(-1);
        assertThat(v7.mismatch("beta", "alpha", ROLE_PRIMARY, SIZE, BLOCK))
            .isEqualTo("protocol version 7 not supported: this node speaks 2..4");

        final Hello range = new Hello(WireProtocol.MAGIC, 5, 6, ROLE_PRIMARY, SIZE, BLOCK, "alpha", "beta", "vm1");
        assertThat(range.mismatch("beta", "alpha", ROLE_PRIMARY, SIZE, BLOCK)).contains("protocol version 5..6");
        final Hello v1 = new Hello(WireProtocol.MAGIC, 1, 1, ROLE_PRIMARY, SIZE, BLOCK, "alpha", "beta", "vm1");
        assertThat(v1.mismatch("beta", "alpha", ROLE_PRIMARY, SIZE, BLOCK))
            .isEqualTo("protocol version 1 not supported: this node speaks 2..4");

        // a peer that also speaks newer versions agrees on ours
        final Hello wide = new Hello(WireProtocol.MAGIC, 1, 5, ROLE_PRIMARY, SIZE, BLOCK, "alpha", "beta", "vm1");
        assertThat(wide.agreedVersion()).isEqualTo(4);
        // a version-2 node (before link authentication) still agrees with this one
        final Hello v2 = new Hello(WireProtocol.MAGIC, 2, 2, ROLE_PRIMARY, SIZE, BLOCK, "alpha", "beta", "vm1");
        assertThat(v2.agreedVersion()).isEqualTo(2);
        assertThat(v2.mismatch("beta", "alpha", ROLE_PRIMARY, SIZE, BLOCK)).isNull();
        assertThat(wide.mismatch("beta", "alpha", ROLE_PRIMARY, SIZE, BLOCK)).isNull();

        // the version is checked first: everything else may be wrong too
        assertThat(v7.mismatch("x", "y", ROLE_STANDBY, 1, 1)).startsWith("protocol version 7");
    }

    // ------------------------------------------------------------------ bad bodies

    @Test
    void badMagicIsAProtocolException()
    {
        final Hello http = new Hello(0x47455420, 1, 1, ROLE_PRIMARY, SIZE, BLOCK, "alpha", "beta", "vm1");
        assertThatThrownBy(() -> throughDecoder(http, WireProtocol.TYPE_HELLO, Hello::decode))
            .isInstanceOf(ProtocolException.class)
            .hasMessageContaining("bad magic 0x47455420")
            .hasMessageContaining("not doppel");
    }

    @Test
    void truncatedFixedPartIsAProtocolException()
    {
        final ByteBuf buf = Unpooled.buffer();
        final int start = WireProtocol.beginFrame(buf, WireProtocol.TYPE_HELLO);
        buf.writeInt(WireProtocol.MAGIC);
        buf.writeShort(1);
        buf.writeShort(1);
        WireProtocol.endFrame(buf, start, new CRC32C());
        assertThatThrownBy(() -> decodeFrame(buf, WireProtocol.TYPE_HELLO, Hello::decode))
            .isInstanceOf(ProtocolException.class)
            .hasMessageContaining("truncated, 8 bytes");
    }

    @Test
    void truncatedNamesAreAProtocolException()
    {
        final ByteBuf whole = Unpooled.buffer();
        fromAlpha().encode(whole, WireProtocol.TYPE_HELLO, new CRC32C());
        final int bodyLength = whole.readableBytes() - WireProtocol.HEADER_BYTES;
        try
        {
            // every cut inside the names fails cleanly, never with an index exception
            for (int keep = 24; keep < bodyLength - Hello.GENERATION_BYTES; keep++) // then the generations
            {
                final ByteBuf body = whole.slice(WireProtocol.HEADER_BYTES, keep);
                final int kept = keep;
                assertThatThrownBy(() -> Hello.decode(body))
                    .as("body cut to %d of %d bytes", kept, bodyLength)
                    .isInstanceOf(ProtocolException.class)
                    .hasMessageContaining("handshake");
            }
        }
        finally
        {
            whole.release();
        }
    }

    @Test
    void nameLongerThanTheMaximumIsAProtocolException()
    {
        final ByteBuf body = Unpooled.buffer();
        body.writeInt(WireProtocol.MAGIC).writeShort(1).writeShort(1).writeByte(1).writeZero(3)
            .writeLong(SIZE).writeInt(BLOCK);
        body.writeShort(300).writeZero(300);
        assertThatThrownBy(() -> Hello.decode(body))
            .isInstanceOf(ProtocolException.class)
            .hasMessageContaining("handshake node: name length 300");
        body.release();
    }

    // ------------------------------------------------------------------ reject

    @Test
    void rejectRoundTripAndTruncation()
    {
        final String message = "volume vm1: size mismatch, peer has 1 bytes, this node has 2";
        final ByteBuf buf = Unpooled.buffer();
        Hello.encodeReject(buf, message, new CRC32C());
        assertThat(decodeFrame(buf, WireProtocol.TYPE_REJECT, Hello::decodeReject)).isEqualTo(message);

        final ByteBuf big = Unpooled.buffer();
        Hello.encodeReject(big, "x".repeat(5000), new CRC32C());
        assertThat(decodeFrame(big, WireProtocol.TYPE_REJECT, Hello::decodeReject)).hasSize(1024);

        final ByteBuf tiny = Unpooled.wrappedBuffer(new byte[] {0, 1});
        assertThat(Hello.decodeReject(tiny)).isEqualTo("(truncated reject)");
        final ByteBuf cut = Unpooled.buffer().writeShort(1).writeShort(50)
            .writeBytes("short".getBytes(StandardCharsets.UTF_8));
        assertThat(Hello.decodeReject(cut)).isEqualTo("short");
    }
}
