package io.doppel.pipeline;

import com.dynatrace.hash4j.hashing.HashValue128;
import io.doppel.net.FrameDecoder;
import io.doppel.net.ProtocolException;
import io.doppel.net.WireProtocol;
import io.doppel.storage.Volume;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.zip.CRC32C;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class BlockCodecTest
{
    private static final long MiB = 1L << 20;
    private static final int VOLUME_SIZE = (int)(4 * MiB);
    /** Frame offsets (from the frame start) of the DATA body fields. */
    private static final int BODY = WireProtocol.HEADER_BYTES;
    private static final int CODEC_AT = BODY + 8 + 8 + 4;
    private static final int PAYLOAD_AT = BODY + WireProtocol.DATA_HEADER_BYTES;
    private static final byte FILL = (byte)0xA5;

    private static final String[] WORDS = {"the", "block", "volume", "replica", "standby", "primary", "frame",
        "window", "dirty", "bitmap", "checksum", "doppel", "of", "and", "a", "to", "is", "in", "write", "read"};

    private final ByteBufAllocator alloc = PooledByteBufAllocator.DEFAULT;

    @TempDir
    Path dir;

    private Volume volume;
    private BlockApplier applier;

    @BeforeEach
    void openVolume() throws IOException
    {
        volume = Volume.open(dir.resolve("standby.img"), VOLUME_SIZE, MiB);
        final byte[] fill = new byte[VOLUME_SIZE];
        Arrays.fill(fill, FILL);
        volume.write(0, ByteBuffer.wrap(fill));
        applier = new BlockApplier(volume);
    }

    @AfterEach
    void closeVolume() throws IOException
    {
        volume.close();
    }

    // ------------------------------------------------------------------ round trips

    @ParameterizedTest
    @EnumSource(Compression.class)
    void textLikeDataCompressesAndRoundTrips(final Compression compression)
    {
        final BlockEncoder encoder = new BlockEncoder(compression);
        assertThat(encoder.compression()).isEqualTo(compression);
        final byte[] data = text(new SplittableRandom(1), 65536);
        final long offset = MiB - 5000; // the applier's write crosses a window
        for (final boolean heapFrame : new boolean[] {false, true})
        {
            final ByteBuf frame = encoder.encode(alloc, 77, offset, direct(data, 13), 13, data.length);
            final int codec = frame.getUnsignedByte(CODEC_AT);
            final int payload = frame.readableBytes() - PAYLOAD_AT;
            assertThat((int)frame.getUnsignedByte(WireProtocol.TYPE_OFFSET)).isEqualTo(WireProtocol.TYPE_DATA);
            assertThat(frame.getInt(0)).isEqualTo(frame.readableBytes() - WireProtocol.LENGTH_FIELD_BYTES);
            if (compression == Compression.NONE)
            {
                assertThat(codec).isZero();
                assertThat(payload).isEqualTo(data.length);
            }
            else
            {
                assertThat(codec).isEqualTo(compression.wireId());
                assertThat(payload).isLessThanOrEqualTo((int)(data.length * BlockEncoder.MIN_SAVING_RATIO));
            }
            assertThat(applyThroughDecoder(heapFrame ? toHeap(frame) : frame)).isEqualTo(77);
            assertVolumeHolds(offset, data);
        }
        assertThat(encoder.rawBytes()).isEqualTo(2L * data.length);
        assertThat(encoder.zeroBytes()).isZero();
        assertThat(encoder.payloadBytes()).isLessThanOrEqualTo(encoder.rawBytes());
        if (compression != Compression.NONE)
        {
            assertThat(encoder.payloadBytes()).isLessThan(encoder.rawBytes());
        }
    }

    @ParameterizedTest
    @EnumSource(Compression.class)
    void randomDataFallsBackToRaw(final Compression compression)
    {
        final BlockEncoder encoder = new BlockEncoder(compression);
        final byte[] data = random(new SplittableRandom(2), 4096);
        final ByteBuf frame = encoder.encode(alloc, 5, 8192, direct(data, 0), 0, data.length);
        assertThat((int)frame.getUnsignedByte(CODEC_AT)).as("codec byte").isZero();
        assertThat(frame.readableBytes() - PAYLOAD_AT).isEqualTo(data.length);
        assertThat(frame.getInt(BODY + 16)).as("length field").isEqualTo(data.length);
        final byte[] payload = new byte[data.length];
        frame.getBytes(PAYLOAD_AT, payload);
        assertThat(Arrays.mismatch(payload, data)).as("raw payload is the data").isEqualTo(-1);
        assertThat(applyThroughDecoder(frame)).isEqualTo(5);
        assertVolumeHolds(8192, data);
        assertThat(encoder.payloadBytes()).isEqualTo(data.length);
    }

    @ParameterizedTest
    @EnumSource(Compression.class)
    void allZeroBlockBecomesAZeroFrameWithoutPayload(final Compression compression)
    {
        final BlockEncoder encoder = new BlockEncoder(compression);
        final int length = 65536;
        final long offset = MiB - 4096; // crosses a window on the standby
        final ByteBuf frame = encoder.encode(alloc, 9, offset, ByteBuffer.allocateDirect(length + 64), 64, length);
        assertThat((int)frame.getUnsignedByte(WireProtocol.TYPE_OFFSET)).isEqualTo(WireProtocol.TYPE_ZERO);
        assertThat(frame.readableBytes()).isEqualTo(WireProtocol.HEADER_BYTES + 24);
        assertThat(frame.getLong(BODY)).isEqualTo(9);
        assertThat(frame.getLong(BODY + 8)).isEqualTo(offset);
        assertThat(frame.getLong(BODY + 16)).isEqualTo(length);
        assertThat(volume.isZero(offset, length)).isFalse();
        assertThat(applyThroughDecoder(frame)).isEqualTo(9);
        assertThat(volume.isZero(offset, length)).isTrue();
        assertThat(volume.isZero(offset - 1, 1)).isFalse();
        assertThat(volume.isZero(offset + length, 1)).isFalse();
        assertThat(encoder.zeroBytes()).isEqualTo(length);
        assertThat(encoder.rawBytes()).isZero();
    }

    @ParameterizedTest
    @EnumSource(Compression.class)
    void oddLengthsAndOffsetsRoundTrip(final Compression compression)
    {
        final BlockEncoder encoder = new BlockEncoder(compression);
        final SplittableRandom random = new SplittableRandom(3);
        final int[] lengths = {1, 3, 31, 33, 777, 4096 + 13, 65535};
        long seq = 100;
        for (final int length : lengths)
        {
            for (final boolean textual : new boolean[] {true, false})
            {
                final byte[] data = textual ? text(random, length) : random(random, length);
                final long offset = 12345 + random.nextInt(3 * (int)MiB);
                final ByteBuf frame = encoder.encode(alloc, seq, offset, direct(data, 5), 5, length);
                assertThat(applyThroughDecoder(frame)).isEqualTo(seq);
                assertVolumeHolds(offset, data);
                seq++;
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Compression.class)
    void fullMebibyteBlocksFitOneFrame(final Compression compression) throws IOException
    {
        final BlockEncoder encoder = new BlockEncoder(compression);
        final SplittableRandom random = new SplittableRandom(4);
        final int length = WireProtocol.MAX_PAYLOAD_BYTES;
        try (Volume primary = Volume.open(dir.resolve("primary.img"), 2 * MiB, MiB))
        {
            // encode straight from the primary's mapped window, as the sender does
            for (final byte[] data : new byte[][] {random(random, length), text(random, length)})
            {
                primary.write(MiB, ByteBuffer.wrap(data));
                final ByteBuf frame = encoder.encode(alloc, 1, MiB, primary.windowFor(MiB),
                    primary.indexInWindow(MiB), length);
                assertThat(frame.getInt(0)).isLessThanOrEqualTo(WireProtocol.MAX_LENGTH);
                assertThat(applyThroughDecoder(frame)).isEqualTo(1);
                assertVolumeHolds(MiB, data);
            }
        }
    }

    @Test
    void encodeRefusesBadLengths()
    {
        final BlockEncoder encoder = new BlockEncoder(Compression.LZ4);
        final ByteBuffer src = ByteBuffer.allocateDirect(WireProtocol.MAX_PAYLOAD_BYTES + 1);
        assertThatThrownBy(() -> encoder.encode(alloc, 0, 0, src, 0, 0))
            .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("block length 0");
        assertThatThrownBy(() -> encoder.encode(alloc, 0, 0, src, 0, WireProtocol.MAX_PAYLOAD_BYTES + 1))
            .isInstanceOf(IllegalArgumentException.class)
            .hasMessageContaining("block length " + (WireProtocol.MAX_PAYLOAD_BYTES + 1));
    }

    // ------------------------------------------------------------------ hashes

    @Test
    void bufferHashEqualsArrayHashForTheSameBytes()
    {
        final SplittableRandom random = new SplittableRandom(5);
        for (final int length : new int[] {0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 100, 128, 129, 240, 241, 1000, 4096, 4109})
        {
            final byte[] data = random(random, length);
            final HashValue128 expected = BlockHash.of(data, 0, length);

            final ByteBuffer heap = ByteBuffer.wrap(data);
            final ByteBuffer heapLittle = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
            final ByteBuffer direct = direct(data, 11);
            final ByteBuffer directLittle = direct(data, 11).order(ByteOrder.LITTLE_ENDIAN);

            assertThat(BlockHash.of(heap, 0, length)).as("heap big-endian buffer, %d bytes", length)
                .isEqualTo(expected);
            assertThat(BlockHash.of(heapLittle, 0, length)).as("heap little-endian buffer, %d bytes", length)
                .isEqualTo(expected);
            assertThat(BlockHash.of(direct, 11, length)).as("direct big-endian buffer, %d bytes", length)
                .isEqualTo(expected);
            assertThat(BlockHash.of(directLittle, 11, length)).as("direct little-endian buffer, %d bytes", length)
                .isEqualTo(expected);

            // an offset into the array hashes the same bytes
            final byte[] padded = new byte[length + 3];
            System.arraycopy(data, 0, padded, 3, length);
            assertThat(BlockHash.of(padded, 3, length)).isEqualTo(expected);
        }
    }

    @Test
    void hashOfAMappedWindowEqualsArrayHash() throws IOException
    {
        final byte[] data = random(new SplittableRandom(6), 8192);
        volume.write(2 * MiB + 4096, ByteBuffer.wrap(data));
        final ByteBuffer window = volume.windowFor(2 * MiB + 4096);
        assertThat(BlockHash.of(window, volume.indexInWindow(2 * MiB + 4096), data.length))
            .isEqualTo(BlockHash.of(data, 0, data.length));
    }

    @Test
    void zeroHashes()
    {
        for (final int length : new int[] {1, 4096, 65536})
        {
            assertThat(BlockHash.ofZeros(length)).isEqualTo(BlockHash.of(new byte[length], 0, length));
            assertThat(BlockHash.ofZeros(length)).isEqualTo(BlockHash.of(ByteBuffer.allocateDirect(length), 0, length));
        }
        assertThat(BlockHash.ofZeros(4096)).isNotEqualTo(BlockHash.ofZeros(8192));
        final byte[] one = new byte[4096];
        one[4095] = 1;
        assertThat(BlockHash.of(one, 0, one.length)).isNotEqualTo(BlockHash.ofZeros(4096));
    }

    @Test
    void emptyInputHashIsTheKnownXxh3Value()
    {
        // XXH3_128bits of the empty input, from the reference implementation's test vectors
        final HashValue128 empty = BlockHash.of(new byte[0], 0, 0);
        assertThat(empty.getMostSignificantBits()).isEqualTo(0x99aa06d3014798d8L);
        assertThat(empty.getLeastSignificantBits()).isEqualTo(0x6001c324468d497fL);
    }

    // ------------------------------------------------------------------ corruption

    @Test
    void flippedRawPayloadByteIsRejectedAndNothingIsWritten()
    {
        final BlockEncoder encoder = new BlockEncoder(Compression.LZ4);
        final byte[] data = random(new SplittableRandom(7), 4096);
        final long offset = 3 * MiB;
        final ByteBuf frame = encoder.encode(alloc, 1, offset, direct(data, 0), 0, data.length);
        assertThat((int)frame.getUnsignedByte(CODEC_AT)).isZero();
        frame.setByte(PAYLOAD_AT + 1000, frame.getByte(PAYLOAD_AT + 1000) ^ 0x01);
        fixChecksum(frame);
        assertThatThrownBy(() -> applyThroughDecoder(frame))
            .isInstanceOf(ProtocolException.class)
            .hasMessageContaining("XXH3-128 mismatch")
            .hasMessageContaining("offset " + offset);
        assertThat(volumeUnchanged()).isTrue();
    }

    @ParameterizedTest
    @EnumSource(value = Compression.class, names = {"LZ4", "ZSTD"})
    void corruptCompressedPayloadsAreRejectedAndNothingIsWritten(final Compression compression)
    {
        final BlockEncoder encoder = new BlockEncoder(compression);
        final SplittableRandom random = new SplittableRandom(8);
        final byte[] data = text(random, 16384);
        for (int trial = 0; trial < 60; trial++)
        {
            final ByteBuf frame = encoder.encode(alloc, trial, 2 * MiB, direct(data, 0), 0, data.length);
            assertThat((int)frame.getUnsignedByte(CODEC_AT)).isEqualTo(compression.wireId());
            final int payload = frame.readableBytes() - PAYLOAD_AT;
            final int at = PAYLOAD_AT + random.nextInt(payload);
            frame.setByte(at, frame.getByte(at) ^ (1 + random.nextInt(255)));
            fixChecksum(frame);
            final ByteBuf input = trial % 2 == 0 ? frame : toHeap(frame);
            assertThatThrownBy(() -> applyThroughDecoder(input))
                .as("trial %d, byte %d of %d flipped", trial, at - PAYLOAD_AT, payload)
                .isInstanceOf(ProtocolException.class);
            assertThat(volumeUnchanged()).as("trial %d", trial).isTrue();
        }
    }

    @Test
    void unknownCodecIsRejected()
    {
        final ByteBuf frame = new BlockEncoder(Compression.NONE)
            .encode(alloc, 1, 0, direct(random(new SplittableRandom(9), 512), 0), 0, 512);
        frame.setByte(CODEC_AT, 3);
        fixChecksum(frame);
        assertThatThrownBy(() -> applyThroughDecoder(frame))
            .isInstanceOf(ProtocolException.class).hasMessageContaining("unknown codec 3");
        assertThat(volumeUnchanged()).isTrue();
    }

    @Test
    void rawPayloadOfTheWrongLengthIsRejected()
    {
        final ByteBuf frame = new BlockEncoder(Compression.NONE)
            .encode(alloc, 1, 0, direct(random(new SplittableRandom(10), 512), 0), 0, 512);
        frame.writerIndex(frame.writerIndex() - 1);
        frame.setInt(0, frame.readableBytes() - WireProtocol.LENGTH_FIELD_BYTES);
        fixChecksum(frame);
        assertThatThrownBy(() -> applyThroughDecoder(frame))
            .isInstanceOf(ProtocolException.class).hasMessageContaining("raw payload of 511 bytes for length 512");
        assertThat(volumeUnchanged()).isTrue();
    }

    @Test
    void rangesOutsideTheVolumeAreRejected()
    {
        final BlockEncoder encoder = new BlockEncoder(Compression.LZ4);
        final ByteBuf data = encoder.encode(alloc, 1, VOLUME_SIZE - 100, direct(text(new SplittableRandom(11), 4096), 0),
            0, 4096);
        assertThatThrownBy(() -> applyThroughDecoder(data))
            .isInstanceOf(ProtocolException.class)
            .hasMessageContaining("offset=" + (VOLUME_SIZE - 100))
            .hasMessageContaining("outside the volume");
        final ByteBuf negative = encoder.encodeZero(alloc, 1, -4096, 4096);
        assertThatThrownBy(() -> applyThroughDecoder(negative))
            .isInstanceOf(ProtocolException.class).hasMessageContaining("ZERO frame: offset=-4096");
        final ByteBuf tooLong = encoder.encodeZero(alloc, 1, 0, VOLUME_SIZE + 1L);
        assertThatThrownBy(() -> applyThroughDecoder(tooLong))
            .isInstanceOf(ProtocolException.class).hasMessageContaining("outside the volume");
        assertThat(volumeUnchanged()).isTrue();
    }

    @Test
    void truncatedBodiesAreRejected()
    {
        final ByteBuf shortData = Unpooled.buffer();
        final int start = WireProtocol.beginFrame(shortData, WireProtocol.TYPE_DATA);
        shortData.writeLong(1);
        shortData.writeLong(0);
        WireProtocol.endFrame(shortData, start, new CRC32C());
        assertThatThrownBy(() -> applyThroughDecoder(shortData))
            .isInstanceOf(ProtocolException.class).hasMessageContaining("truncated header, 16 bytes");

        final ByteBuf shortZero = Unpooled.buffer();
        final int zs = WireProtocol.beginFrame(shortZero, WireProtocol.TYPE_ZERO);
        shortZero.writeLong(1);
        WireProtocol.endFrame(shortZero, zs, new CRC32C());
        assertThatThrownBy(() -> applyThroughDecoder(shortZero))
            .isInstanceOf(ProtocolException.class).hasMessageContaining("ZERO frame: truncated, 8 bytes");
        assertThat(volumeUnchanged()).isTrue();
    }

    @Test
    void compressionNames()
    {
        assertThat(Compression.fromConfig("LZ4")).isEqualTo(Compression.LZ4);
        assertThat(Compression.fromConfig("zstd")).isEqualTo(Compression.ZSTD);
        assertThat(Compression.fromConfig("none")).isEqualTo(Compression.NONE);
        assertThat(Compression.fromWireId(2)).isEqualTo(Compression.ZSTD);
        assertThat(Compression.fromWireId(3)).isNull();
        assertThatThrownBy(() -> Compression.fromConfig("snappy"))
            .isInstanceOf(IllegalArgumentException.class)
            .hasMessageContaining("snappy").hasMessageContaining("none | lz4 | zstd");
    }

    /**
     * On the standby the frame decoder runs on the I/O loop and the applier on an apply thread, and both
     * work on one read buffer: the decoder checks the CRC of the next frames (through the buffer's internal
     * NIO view) while the applier applies a slice decoded earlier. A frame must apply the same whatever the
     * decoder does meanwhile; before the applier stopped borrowing the read buffer's internal view, a shifted
     * position or limit failed the hash check or a bounds check now and then, which dropped the link and
     * released the primary's waiting sync replies without the standby's answer.
     */
    @Test
    void aSliceAppliesTheSameWhileTheDecoderReadsItsBufferOnAnotherThread() throws Exception
    {
        final BlockEncoder encoder = new BlockEncoder(Compression.LZ4);
        final SplittableRandom random = new SplittableRandom(11);
        final int frames = 32;
        final int blockBytes = 4096;
        final byte[][] data = new byte[frames][];
        final int[] starts = new int[frames + 1];
        // The read buffer as the daemon's decoder has it: not wrapped by the leak detector (these tests run it
        // at paranoid, which wraps every buffer, and a wrapped buffer's slices take another path).
        final io.netty.util.ResourceLeakDetector.Level level = io.netty.util.ResourceLeakDetector.getLevel();
        io.netty.util.ResourceLeakDetector.setLevel(io.netty.util.ResourceLeakDetector.Level.DISABLED);
        final ByteBuf read;
        try
        {
            read = alloc.directBuffer(frames * (PAYLOAD_AT + blockBytes + 64));
        }
        finally
        {
            io.netty.util.ResourceLeakDetector.setLevel(level);
        }
        final ByteBuf[] slices = new ByteBuf[frames];
        for (int i = 0; i < frames; i++)
        {
            // Raw and LZ4 payloads alternate: both the copy and the decompression read the payload view.
            data[i] = i % 2 == 0 ? random(random, blockBytes) : text(random, blockBytes);
            final ByteBuf frame = encoder.encode(alloc, i + 1, (long)i * blockBytes, direct(data[i], 0), 0, blockBytes);
            starts[i] = read.writerIndex();
            read.writeBytes(frame);
            frame.release();
            starts[i + 1] = read.writerIndex();
        }
        for (int i = 0; i < frames; i++)
        {
            // As FrameDecoder emits them: retained slices of the read buffer.
            slices[i] = read.retainedSlice(starts[i], starts[i + 1] - starts[i]);
        }
        final java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean();
        final java.util.concurrent.atomic.AtomicReference<String> decoderFailure = new java.util.concurrent.atomic.AtomicReference<>();
        final Thread decoder = new Thread(() ->
        {
            // What FrameDecoder does with each frame of a read: check its CRC through the read buffer.
            final CRC32C crc = new CRC32C();
            while (!stop.get() && decoderFailure.get() == null)
            {
                for (int i = 0; i < frames; i++)
                {
                    try
                    {
                        final int stored = read.getInt(starts[i] + WireProtocol.LENGTH_FIELD_BYTES);
                        final int actual = WireProtocol.checksum(read, starts[i] + WireProtocol.TYPE_OFFSET,
                            starts[i + 1] - starts[i] - WireProtocol.TYPE_OFFSET, crc);
                        if (stored != actual)
                        {
                            decoderFailure.compareAndSet(null, "frame " + i + ": checksum mismatch (stored 0x"
                                + Integer.toHexString(stored) + ", computed 0x" + Integer.toHexString(actual) + ")");
                        }
                    }
                    catch (final RuntimeException e)
                    {
                        decoderFailure.compareAndSet(null, "frame " + i + ": " + e);
                    }
                }
            }
        }, "decoder");
        decoder.start();
        int applied = 0;
        RuntimeException failure = null;
        try
        {
            final long deadline = System.nanoTime() + 2_000_000_000L;
            while (failure == null && decoderFailure.get() == null && System.nanoTime() < deadline)
            {
                for (int i = 0; i < frames && failure == null; i++)
                {
                    slices[i].readerIndex(WireProtocol.HEADER_BYTES);
                    try
                    {
                        assertThat(applier.applyData(slices[i])).isEqualTo(i + 1);
                        applied++;
                    }
                    catch (final RuntimeException e)
                    {
                        failure = e;
                    }
                }
            }
        }
        finally
        {
            stop.set(true);
            decoder.join();
            for (final ByteBuf s : slices)
            {
                s.release();
            }
            read.release();
        }
        assertThat(failure).as("applying frame %d (after %d good applies) while the decoder read the same buffer",
            applied % frames, applied).isNull();
        assertThat(decoderFailure.get()).as("the decoder's checks while the applier read the same buffer (%d applies)",
            applied).isNull();
        assertThat(applied).as("frames applied").isGreaterThan(frames);
        for (int i = 0; i < frames; i++)
        {
            assertVolumeHolds((long)i * blockBytes, data[i]);
        }
    }

    // ------------------------------------------------------------------ helpers

    /** Sends the frame through a FrameDecoder and applies what comes out; returns the seq. Releases everything. */
    private long applyThroughDecoder(final ByteBuf frame)
    {
        final EmbeddedChannel channel = new EmbeddedChannel(new FrameDecoder());
        try
        {
            assertThat(channel.writeInbound(frame)).isTrue();
            final ByteBuf decoded = channel.readInbound();
            try
            {
                assertThat(decoded.readerIndex()).isEqualTo(WireProtocol.TYPE_OFFSET);
                final int type = decoded.readUnsignedByte();
                decoded.skipBytes(3);
                final long seq;
                if (type == WireProtocol.TYPE_DATA)
                {
                    seq = applier.applyData(decoded);
                }
                else
                {
                    assertThat(type).isEqualTo(WireProtocol.TYPE_ZERO);
                    seq = applier.applyZero(decoded);
                }
                assertThat(decoded.isReadable()).as("whole body consumed").isFalse();
                return seq;
            }
            finally
            {
                decoded.release();
            }
        }
        finally
        {
            assertThat(channel.finishAndReleaseAll()).isFalse();
        }
    }

    private void assertVolumeHolds(final long offset, final byte[] data)
    {
        final ByteBuffer back = ByteBuffer.allocate(data.length);
        volume.read(offset, back);
        assertThat(Arrays.mismatch(back.array(), data)).as("first differing byte at offset %d", offset).isEqualTo(-1);
    }

    /** True when the volume still holds only the fill pattern. */
    private boolean volumeUnchanged()
    {
        final ByteBuffer all = ByteBuffer.allocate(VOLUME_SIZE);
        volume.read(0, all);
        final byte[] expected = new byte[VOLUME_SIZE];
        Arrays.fill(expected, FILL);
        return Arrays.mismatch(all.array(), expected) == -1;
    }

    private static void fixChecksum(final ByteBuf frame)
    {
        final int length = frame.getInt(0);
        frame.setInt(WireProtocol.LENGTH_FIELD_BYTES, WireProtocol.checksum(frame, WireProtocol.TYPE_OFFSET,
            length - WireProtocol.CHECKSUM_BYTES, new CRC32C()));
    }

    private static ByteBuf toHeap(final ByteBuf frame)
    {
        final ByteBuf heap = Unpooled.buffer(frame.readableBytes());
        heap.writeBytes(frame);
        frame.release();
        return heap;
    }

    private static ByteBuffer direct(final byte[] data, final int index)
    {
        final ByteBuffer b = ByteBuffer.allocateDirect(index + data.length + 7);
        b.put(index, data);
        return b;
    }

    private static byte[] random(final SplittableRandom random, final int length)
    {
        final byte[] b = new byte[length];
        random.nextBytes(b);
        if (length > 0 && b[0] == 0)
        {
            b[0] = 1; // never all zero
        }
        return b;
    }

    private static byte[] text(final SplittableRandom random, final int length)
    {
        final StringBuilder sb = new StringBuilder(length + 16);
        while (sb.length() < length)
        {
            sb.append(WORDS[random.nextInt(WORDS.length)]);
            sb.append(random.nextInt(12) == 0 ? '\n' : ' ');
        }
        return Arrays.copyOf(sb.toString().getBytes(StandardCharsets.US_ASCII), length);
    }
}
