package io.doppel.net;

import io.doppel.fuzz.Fuzz;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.DecoderException;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.zip.CRC32C;

import static io.doppel.net.WireProtocol.LENGTH_FIELD_BYTES;
import static io.doppel.net.WireProtocol.MAX_LENGTH;
import static io.doppel.net.WireProtocol.TYPE_OFFSET;
import static org.assertj.core.api.Assertions.assertThat;
import static org.quicktheories.QuickTheory.qt;
import static org.quicktheories.generators.SourceDSL.integers;
import static org.quicktheories.generators.SourceDSL.longs;

/**
 * Property tests of the peer link's decoders in a Netty EmbeddedChannel: streams of valid frames with one
 * mutation (bit flips, changed fields with the checksum made right, cuts, oversized lengths) fed in random
 * chunks yield only frames identical to ones sent, or a DecoderException naming what was wrong; the
 * decoder's buffer never holds more than one largest frame, whatever length a prefix claims; and the
 * handshake decoder answers any body with a Hello or a ProtocolException naming the field.
 */
class PeerDecoderFuzzTest
{
    /** A frame of {@code type} with a random body of up to {@code maxBody} bytes. */
    private static byte[] randomFrame(final SplittableRandom random, final int maxBody)
    {
        final byte[] body = new byte[random.nextInt(maxBody + 1)];
        random.nextBytes(body);
        return FrameDecoderTest.frame(1 + random.nextInt(WireProtocol.TYPE_MAX), body);
    }

    @Test
    void mutatedFrameStreamsYieldOnlySentFramesOrADecoderException()
    {
        qt().withFixedSeed(Fuzz.SEED).withExamples(Fuzz.iterations(600))
            .forAll(longs().all(), integers().between(1, 8), integers().between(0, 5))
            .checkAssert((seed, count, how) ->
            {
                final SplittableRandom random = new SplittableRandom(seed);
                final byte[][] frames = new byte[count][];
                for (int i = 0; i < count; i++)
                {
                    frames[i] = randomFrame(random, random.nextInt(4) == 0 ? 70_000 : 300);
                }
                final int victim = random.nextInt(count);
                final byte[] v = frames[victim];
                final ByteBuf b = Unpooled.wrappedBuffer(v);
                switch (how)
                {
                    case 0: // bit flip anywhere but the length field
                        v[LENGTH_FIELD_BYTES + random.nextInt(v.length - LENGTH_FIELD_BYTES)] ^= (byte)(1 << random.nextInt(8));
                        break;
                    case 1: // type changed, checksum fixed
                        v[TYPE_OFFSET] = (byte)random.nextInt(256);
                        FrameDecoderTest.fixChecksum(v);
                        break;
                    case 2: // oversized or undersized length
                        b.setInt(0, random.nextBoolean() ? random.nextInt(WireProtocol.MIN_LENGTH)
                            : (int)(MAX_LENGTH + 1L + random.nextInt(Integer.MAX_VALUE - MAX_LENGTH)));
                        break;
                    case 3: // checksum field changed
                        b.setInt(LENGTH_FIELD_BYTES, b.getInt(LENGTH_FIELD_BYTES) ^ (1 + random.nextInt()));
                        break;
                    case 4: // the stream cut inside the victim: what follows is lost
                        frames[victim] = Arrays.copyOf(v, random.nextInt(v.length));
                        Arrays.fill(frames, victim + 1, count, new byte[0]);
                        break;
                    default: // no mutation: everything must come through
                }
                feed(random, frames, how == 5, how == 1 ? v : null);
            });
    }

    /**
     * Feeds the frames in random chunks and closes; every frame out must equal a sent one, in order; at most
     * one DecoderException, with a message saying what was wrong.
     */
    private static void feed(final SplittableRandom random, final byte[][] frames, final boolean allValid,
        final byte[] retyped)
    {
        final UnpooledByteBufAllocator alloc = new UnpooledByteBufAllocator(false);
        final EmbeddedChannel ch = new EmbeddedChannel();
        ch.config().setAllocator(alloc);
        ch.pipeline().addLast(new FrameDecoder());
        final byte[] all = concat(frames);
        int next = 0;
        int failures = 0;
        long peak = 0;
        for (int pos = 0; pos < all.length;)
        {
            final int n = Math.min(all.length - pos, 1 + random.nextInt(random.nextBoolean() ? 64 : 65536));
            try
            {
                ch.writeInbound(Unpooled.wrappedBuffer(all, pos, n));
            }
            catch (final DecoderException e)
            {
                failures++;
                assertThat(e.getMessage()).containsAnyOf("frame length", "checksum mismatch", "unknown frame type");
            }
            peak = Math.max(peak, alloc.metric().usedHeapMemory());
            pos += n;
            next = drain(ch, frames, next, retyped);
        }
        try
        {
            ch.finish();
        }
        catch (final DecoderException e)
        {
            failures++;
            assertThat(e.getMessage()).contains("truncated frame");
        }
        next = drain(ch, frames, next, retyped);
        assertThat(failures).as("decoder exceptions").isLessThanOrEqualTo(1);
        assertThat(peak).as("bytes the decoder buffered").isLessThanOrEqualTo(2L * MAX_LENGTH + 65536);
        if (allValid)
        {
            assertThat(failures).isZero();
            assertThat(next).isEqualTo(frames.length);
        }
    }

    private static int drain(final EmbeddedChannel ch, final byte[][] frames, final int first, final byte[] retyped)
    {
        int next = first;
        ByteBuf f;
        while ((f = ch.readInbound()) != null)
        {
            try
            {
                final byte[] got = new byte[f.writerIndex()];
                f.getBytes(0, got);
                assertThat(next).as("more frames out than in").isLessThan(frames.length);
                // a type changed to another valid type, checksum fixed, is a valid frame: it comes out as sent
                assertThat(got).as("frame %d comes out exactly as sent", next).isEqualTo(frames[next]);
                next++;
            }
            finally
            {
                f.release();
            }
        }
        return next;
    }

    private static byte[] concat(final byte[][] parts)
    {
        int n = 0;
        for (final byte[] p : parts)
        {
            n += p.length;
        }
        final byte[] out = new byte[n];
        int at = 0;
        for (final byte[] p : parts)
        {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }

    @Test
    void aHugeLengthPrefixNeverAllocatesItsBody()
    {
        for (final long length : new long[] {MAX_LENGTH + 1L, 1L << 30, 0x7fffffffL, 0x80000000L, 0xffffffffL})
        {
            final UnpooledByteBufAllocator alloc = new UnpooledByteBufAllocator(false);
            final EmbeddedChannel ch = new EmbeddedChannel();
            ch.config().setAllocator(alloc);
            ch.pipeline().addLast(new FrameDecoder());
            final ByteBuf prefix = Unpooled.buffer(4).writeInt((int)length);
            try
            {
                ch.writeInbound(prefix);
                throw new AssertionError("a length of " + length + " was not refused at once");
            }
            catch (final DecoderException e)
            {
                assertThat(e).hasMessageContaining("frame length " + length);
            }
            // what follows is discarded, not buffered
            for (int i = 0; i < 64; i++)
            {
                ch.writeInbound(Unpooled.wrappedBuffer(new byte[65536]));
                assertThat(alloc.metric().usedHeapMemory()).as("buffered after a %d-byte prefix", length)
                    .isLessThan(1 << 20);
            }
            assertThat(ch.finish()).isFalse();
        }
    }

    @Test
    void handshakeBodiesDecodeOrFailWithAProtocolException()
    {
        final ByteBuf good = Unpooled.buffer();
        Hello.of(WireProtocol.ROLE_PRIMARY, 1L << 30, 4096, "alpha", "beta", "vm1").withGenerations(7, 5, 1, 0)
            .encode(good, WireProtocol.TYPE_HELLO, new CRC32C());
        final byte[] body = new byte[good.readableBytes() - WireProtocol.HEADER_BYTES];
        good.getBytes(WireProtocol.HEADER_BYTES, body);
        good.release();
        qt().withFixedSeed(Fuzz.SEED + 1).withExamples(Fuzz.iterations(2000))
            .forAll(longs().all(), integers().between(0, 4))
            .checkAssert((seed, how) ->
            {
                final SplittableRandom random = new SplittableRandom(seed);
                byte[] b = body.clone();
                switch (how)
                {
                    case 0:
                        b[random.nextInt(b.length)] ^= (byte)(1 << random.nextInt(8));
                        break;
                    case 1:
                        b = Arrays.copyOf(b, random.nextInt(b.length));
                        break;
                    case 2: // a name length (at 24, and after each name) set to anything
                        Unpooled.wrappedBuffer(b).setShort(24, random.nextInt(1 << 16));
                        break;
                    case 3:
                        b = new byte[random.nextInt(400)];
                        random.nextBytes(b);
                        if (b.length >= 4 && random.nextBoolean())
                        {
                            Unpooled.wrappedBuffer(b).setInt(0, WireProtocol.MAGIC);
                        }
                        break;
                    default:
                        final int at = random.nextInt(b.length);
                        b[at] = (byte)random.nextInt(256);
                }
                final ByteBuf in = Unpooled.wrappedBuffer(b);
                try
                {
                    final Hello h = Hello.decode(in);
                    // whatever was decoded can be checked and described without failing
                    h.mismatch("beta", "alpha", WireProtocol.ROLE_PRIMARY, 1L << 30, 4096);
                    h.agreedVersion();
                    assertThat(h.magic()).isEqualTo(WireProtocol.MAGIC);
                }
                catch (final ProtocolException e)
                {
                    assertThat(e.getMessage()).startsWith("handshake");
                }
                assertThat(Hello.decodeReject(Unpooled.wrappedBuffer(b))).isNotNull();
            });
    }
}
