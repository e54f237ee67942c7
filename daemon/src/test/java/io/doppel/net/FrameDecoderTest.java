package io.doppel.net;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.CorruptedFrameException;
import io.netty.handler.codec.DecoderException;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.zip.CRC32C;

import static io.doppel.net.WireProtocol.LENGTH_FIELD_BYTES;
import static io.doppel.net.WireProtocol.MAX_LENGTH;
import static io.doppel.net.WireProtocol.MIN_LENGTH;
import static io.doppel.net.WireProtocol.TYPE_OFFSET;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.longs;

class FrameDecoderTest
{
    private final List<EmbeddedChannel> channels = new ArrayList<>();

    @AfterEach
    void releaseEverything()
    {
        for (final EmbeddedChannel ch : channels)
        {
            try
            {
                ch.finishAndReleaseAll();
            }
            catch (final DecoderException ignore)
            {
                // a test that left a partial frame behind already checked what it wanted
            }
        }
    }

    private EmbeddedChannel channel()
    {
        return channel(new FrameDecoder());
    }

    private EmbeddedChannel channel(final FrameDecoder decoder)
    {
        final EmbeddedChannel ch = new EmbeddedChannel(decoder);
        channels.add(ch);
        return ch;
    }

    /** A frame of {@code type} whose body is {@code body}, with a correct length and checksum. */
    static byte[] frame(final int type, final byte[] body)
    {
        final ByteBuf buf = Unpooled.buffer();
        try
        {
            final int start = WireProtocol.beginFrame(buf, type);
            buf.writeBytes(body);
            WireProtocol.endFrame(buf, start, new CRC32C());
            final byte[] out = new byte[buf.readableBytes()];
            buf.readBytes(out);
            return out;
        }
        finally
        {
            buf.release();
        }
    }

    static byte[] pingFrame(final long value)
    {
        return frame(WireProtocol.TYPE_PING, java.nio.ByteBuffer.allocate(8).putLong(value).array());
    }

    /** Recomputes the checksum of a frame array after a test patched it. */
    static void fixChecksum(final byte[] frame)
    {
        final ByteBuf buf = Unpooled.wrappedBuffer(frame);
        final int length = buf.getInt(0);
        buf.setInt(LENGTH_FIELD_BYTES, WireProtocol.checksum(buf, TYPE_OFFSET,
            length - WireProtocol.CHECKSUM_BYTES, new CRC32C()));
    }

    private static void assertFrameChecks(final ByteBuf frame)
    {
        // reader index on the type byte; the slice still holds the whole frame from index 0
        assertThat(frame.readerIndex()).isEqualTo(TYPE_OFFSET);
        final int length = frame.getInt(0);
        assertThat(frame.writerIndex()).isEqualTo(LENGTH_FIELD_BYTES + length);
        assertThat(length).isBetween(MIN_LENGTH, MAX_LENGTH);
        assertThat(frame.getInt(LENGTH_FIELD_BYTES))
            .isEqualTo(WireProtocol.checksum(frame, TYPE_OFFSET, length - WireProtocol.CHECKSUM_BYTES, new CRC32C()));
        final int type = frame.getUnsignedByte(TYPE_OFFSET);
        assertThat(type).isBetween(1, WireProtocol.TYPE_MAX);
    }

    // ------------------------------------------------------------------ valid input

    @Test
    void validFrameDecodesWithReaderIndexOnTheType()
    {
        final EmbeddedChannel ch = channel();
        assertThat(ch.writeInbound(Unpooled.wrappedBuffer(pingFrame(0x1122334455667788L)))).isTrue();
        final ByteBuf frame = ch.readInbound();
        try
        {
            assertFrameChecks(frame);
            assertThat((int)frame.readUnsignedByte()).isEqualTo(WireProtocol.TYPE_PING);
            assertThat((int)frame.readUnsignedByte()).as("flags").isZero();
            assertThat((int)frame.readShort()).as("reserved").isZero();
            assertThat(frame.readLong()).isEqualTo(0x1122334455667788L);
            assertThat(frame.isReadable()).isFalse();
        }
        finally
        {
            frame.release();
        }
        assertThat(ch.<Object>readInbound()).isNull();
    }

    @Test
    void emptyBodyFrameIsTheMinimum()
    {
        final byte[] bytes = frame(WireProtocol.TYPE_SYNC_DONE, new byte[0]);
        assertThat(bytes).hasSize(WireProtocol.HEADER_BYTES);
        final EmbeddedChannel ch = channel();
        ch.writeInbound(Unpooled.wrappedBuffer(bytes));
        final ByteBuf frame = ch.readInbound();
        assertThat(frame.getInt(0)).isEqualTo(MIN_LENGTH);
        assertThat((int)frame.getUnsignedByte(TYPE_OFFSET)).isEqualTo(WireProtocol.TYPE_SYNC_DONE);
        frame.release();
    }

    @Test
    void severalFramesInOneBuffer()
    {
        final byte[] a = pingFrame(1);
        final byte[] b = frame(WireProtocol.TYPE_ACK, new byte[] {1, 2, 3});
        final byte[] c = pingFrame(3);
        final ByteBuf all = Unpooled.wrappedBuffer(a, b, c);
        final EmbeddedChannel ch = channel();
        ch.writeInbound(all);
        final int[] types = new int[3];
        for (int i = 0; i < 3; i++)
        {
            final ByteBuf f = ch.readInbound();
            assertFrameChecks(f);
            types[i] = f.getUnsignedByte(TYPE_OFFSET);
            f.release();
        }
        assertThat(types).containsExactly(WireProtocol.TYPE_PING, WireProtocol.TYPE_ACK, WireProtocol.TYPE_PING);
        assertThat(ch.<Object>readInbound()).isNull();
    }

    @Test
    void byteByByteDeliveryWorks()
    {
        final byte[] a = pingFrame(42);
        final byte[] b = frame(WireProtocol.TYPE_HASH_LIST, new byte[300]);
        final byte[] both = new byte[a.length + b.length];
        System.arraycopy(a, 0, both, 0, a.length);
        System.arraycopy(b, 0, both, a.length, b.length);
        final EmbeddedChannel ch = channel();
        int frames = 0;
        for (int i = 0; i < both.length; i++)
        {
            ch.writeInbound(Unpooled.wrappedBuffer(new byte[] {both[i]}));
            final ByteBuf f = ch.readInbound();
            if (f != null)
            {
                frames++;
                assertFrameChecks(f);
                assertThat(i).as("frame %d completes on its last byte", frames)
                    .isEqualTo(frames == 1 ? a.length - 1 : both.length - 1);
                f.release();
            }
        }
        assertThat(frames).isEqualTo(2);
        assertThat(ch.finish()).isFalse();
    }

    @Test
    void largestFrameIsAccepted()
    {
        final byte[] body = new byte[WireProtocol.MAX_BODY_BYTES];
        body[body.length - 1] = 7;
        final EmbeddedChannel ch = channel();
        ch.writeInbound(Unpooled.wrappedBuffer(frame(WireProtocol.TYPE_DATA, body)));
        final ByteBuf f = ch.readInbound();
        assertThat(f.getInt(0)).isEqualTo(MAX_LENGTH);
        assertThat(f.getByte(f.writerIndex() - 1)).isEqualTo((byte)7);
        f.release();
    }

    // ------------------------------------------------------------------ bad input

    @Test
    void oversizedLengthIsRefusedBeforeTheBodyArrives()
    {
        final EmbeddedChannel ch = channel();
        final ByteBuf lengthOnly = Unpooled.buffer(4).writeInt(MAX_LENGTH + 1);
        assertThatThrownBy(() -> ch.writeInbound(lengthOnly))
            .isInstanceOf(CorruptedFrameException.class)
            .hasMessageContaining("frame length " + (MAX_LENGTH + 1) + " (expected " + MIN_LENGTH + "-" + MAX_LENGTH + ")");

        final EmbeddedChannel ch2 = channel();
        assertThatThrownBy(() -> ch2.writeInbound(Unpooled.buffer(4).writeInt(-1)))
            .isInstanceOf(DecoderException.class)
            .hasMessageContaining("frame length 4294967295 (expected 8-");
    }

    @Test
    void aSmallerMaximumIsHonoured()
    {
        final EmbeddedChannel ch = channel(new FrameDecoder(100));
        assertThatThrownBy(() -> ch.writeInbound(Unpooled.wrappedBuffer(frame(WireProtocol.TYPE_DATA, new byte[93]))))
            .isInstanceOf(DecoderException.class)
            .hasMessageContaining("frame length 101 (expected 8-100)");
        final EmbeddedChannel ok = channel(new FrameDecoder(100));
        ok.writeInbound(Unpooled.wrappedBuffer(frame(WireProtocol.TYPE_DATA, new byte[92])));
        final ByteBuf f = ok.readInbound();
        assertThat(f.getInt(0)).isEqualTo(100);
        f.release();

        assertThatThrownBy(() -> new FrameDecoder(7)).isInstanceOf(IllegalArgumentException.class)
            .hasMessageContaining("maxLength=7");
        assertThatThrownBy(() -> new FrameDecoder(MAX_LENGTH + 1)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void lengthBelowTheMinimumIsRefused()
    {
        for (int length = 0; length < MIN_LENGTH; length++)
        {
            final EmbeddedChannel ch = channel();
            final ByteBuf buf = Unpooled.buffer().writeInt(length).writeZero(16);
            assertThatThrownBy(() -> ch.writeInbound(buf))
                .isInstanceOf(CorruptedFrameException.class)
                .hasMessageContaining("frame length " + length + " (expected 8-" + MAX_LENGTH + ")");
        }
    }

    @Test
    void garbageIsRefused()
    {
        final EmbeddedChannel ch = channel();
        final ByteBuf http = Unpooled.copiedBuffer("GET / HTTP/1.1\r\nHost: example\r\n\r\n".getBytes());
        assertThatThrownBy(() -> ch.writeInbound(http))
            .isInstanceOf(CorruptedFrameException.class)
            .hasMessageContaining("frame length " + 0x47455420L);
    }

    @Test
    void wrongChecksumIsRefused()
    {
        final byte[] bytes = pingFrame(5);
        bytes[bytes.length - 1] ^= 0x40;
        final EmbeddedChannel ch = channel();
        assertThatThrownBy(() -> ch.writeInbound(Unpooled.wrappedBuffer(bytes)))
            .isInstanceOf(CorruptedFrameException.class)
            .hasMessageContaining("checksum mismatch");
        assertThat(ch.<Object>readInbound()).isNull();
    }

    @Test
    void unknownTypesAreRefused()
    {
        for (final int type : new int[] {0, WireProtocol.TYPE_MAX + 1, 255})
        {
            final byte[] bytes = pingFrame(5);
            bytes[TYPE_OFFSET] = (byte)type;
            fixChecksum(bytes);
            final EmbeddedChannel ch = channel();
            assertThatThrownBy(() -> ch.writeInbound(Unpooled.wrappedBuffer(bytes)))
                .isInstanceOf(CorruptedFrameException.class)
                .hasMessageContaining("unknown frame type " + type + " (expected 1-" + WireProtocol.TYPE_MAX + ")");
        }
    }

    @Test
    void truncatedFrameAtCloseIsReported()
    {
        final byte[] bytes = pingFrame(5);
        final EmbeddedChannel ch = channel();
        ch.writeInbound(Unpooled.wrappedBuffer(bytes, 0, 10));
        assertThat(ch.<Object>readInbound()).isNull();
        assertThatThrownBy(ch::finish)
            .isInstanceOf(DecoderException.class)
            .hasMessageContaining("truncated frame")
            .hasMessageContaining("10 bytes of a " + bytes.length + "-byte frame");

        final EmbeddedChannel tiny = channel();
        tiny.writeInbound(Unpooled.wrappedBuffer(new byte[] {0, 0}));
        assertThatThrownBy(tiny::finish)
            .isInstanceOf(DecoderException.class)
            .hasMessageContaining("truncated frame: connection ended with 2 bytes");
    }

    @Test
    void completeFramesBeforeCloseAreDeliveredWithoutError()
    {
        final EmbeddedChannel ch = channel();
        ch.writeInbound(Unpooled.wrappedBuffer(pingFrame(1)));
        assertThat(ch.finish()).isTrue(); // one message pending, no exception
        final ByteBuf f = ch.readInbound();
        assertFrameChecks(f);
        f.release();
    }

    @Test
    void afterCorruptionFurtherInputIsDiscarded()
    {
        final EmbeddedChannel ch = channel();
        final byte[] good = pingFrame(1);
        final byte[] bad = pingFrame(2);
        bad[TYPE_OFFSET + 5] ^= 1;
        // a good frame, then a bad one in the same read: the good one is still delivered
        assertThatThrownBy(() -> ch.writeInbound(Unpooled.wrappedBuffer(good, bad)))
            .isInstanceOf(CorruptedFrameException.class).hasMessageContaining("checksum mismatch");
        final ByteBuf first = ch.readInbound();
        assertThat(first).isNotNull();
        assertThat(first.getLong(WireProtocol.HEADER_BYTES)).isEqualTo(1);
        first.release();

        // then nothing more comes out, however valid the input
        for (int i = 0; i < 5; i++)
        {
            ch.writeInbound(Unpooled.wrappedBuffer(pingFrame(10 + i)));
            assertThat(ch.<Object>readInbound()).isNull();
        }
        ch.writeInbound(Unpooled.wrappedBuffer(pingFrame(99), 0, 7));
        assertThat(ch.finish()).as("no truncation error and no frames after corruption").isFalse();
    }

    // ------------------------------------------------------------------ fuzz

    @Test
    void randomBytesNeverYieldABadFrameNorAnUnexpectedException()
    {
        qt().withFixedSeed(7788L).withExamples(400)
            .forAll(longs().all(), integers().between(0, 600), integers().between(0, 2))
            .checkAssert((seed, size, mode) ->
            {
                final SplittableRandom random = new SplittableRandom(seed);
                final byte[] bytes = new byte[size];
                random.nextBytes(bytes);
                if (mode == 1 && size >= 4)
                {
                    // a plausible length so the decoder gets past the length check
                    Unpooled.wrappedBuffer(bytes).setInt(0, MIN_LENGTH + random.nextInt(size));
                }
                else if (mode == 2 && size >= 4)
                {
                    // valid frames with a random tail of garbage in between
                    final byte[] f = pingFrame(seed);
                    System.arraycopy(f, 0, bytes, 0, Math.min(f.length, size));
                }
                feedRandomly(random, bytes);
            });
    }

    @Test
    void aSingleFlippedByteNeverYieldsAFrame()
    {
        final SplittableRandom random = new SplittableRandom(4242);
        for (int trial = 0; trial < 500; trial++)
        {
            final byte[] body = new byte[random.nextInt(200)];
            random.nextBytes(body);
            final byte[] f = frame(1 + random.nextInt(WireProtocol.TYPE_MAX), body);
            final int at = random.nextInt(f.length);
            f[at] ^= (byte)(1 + random.nextInt(255));
            final List<ByteBuf> frames = feedRandomly(random, f);
            assertThat(frames).as("trial %d, byte %d of %d flipped", trial, at, f.length).isEmpty();
        }
    }

    /**
     * Feeds {@code bytes} in random chunks, then closes. Every frame must pass the checks; anything thrown
     * must be a DecoderException. Returns the (released) frames seen.
     */
    private static List<ByteBuf> feedRandomly(final SplittableRandom random, final byte[] bytes)
    {
        final EmbeddedChannel ch = new EmbeddedChannel(new FrameDecoder());
        final List<ByteBuf> frames = new ArrayList<>();
        int pos = 0;
        boolean failed = false;
        while (pos < bytes.length)
        {
            final int n = Math.min(bytes.length - pos, 1 + random.nextInt(64));
            try
            {
                ch.writeInbound(Unpooled.wrappedBuffer(bytes, pos, n));
            }
            catch (final DecoderException e)
            {
                assertThat(failed).as("a second exception after corruption: %s", e.getMessage()).isFalse();
                failed = true;
            }
            pos += n;
            drain(ch, frames);
        }
        try
        {
            ch.finish();
        }
        catch (final DecoderException e)
        {
            assertThat(failed).as("a truncation error after corruption").isFalse();
            assertThat(e).hasMessageContaining("truncated frame");
        }
        try
        {
            drain(ch, frames);
        }
        finally
        {
            ch.releaseInbound();
        }
        return frames;
    }

    private static void drain(final EmbeddedChannel ch, final List<ByteBuf> frames)
    {
        ByteBuf f;
        while ((f = ch.readInbound()) != null)
        {
            try
            {
                assertFrameChecks(f);
                frames.add(f);
            }
            finally
            {
                f.release();
            }
        }
    }
}
