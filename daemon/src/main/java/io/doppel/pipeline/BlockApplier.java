package io.doppel.pipeline;

import com.github.luben.zstd.ZstdDecompressCtx;
import io.doppel.net.ProtocolException;
import io.doppel.net.WireProtocol;
import io.doppel.storage.Volume;
import io.netty.buffer.ByteBuf;
import net.jpountz.lz4.LZ4Exception;
import net.jpountz.lz4.LZ4Factory;
import net.jpountz.lz4.LZ4SafeDecompressor;

import java.nio.ByteBuffer;

/**
 * The standby's half of the block pipeline: decompresses a DATA frame into a scratch buffer, checks its
 * XXH3-128 against the one the primary computed, and only then writes it into the volume. A frame that
 * fails any check leaves the volume untouched and raises {@link ProtocolException}, which drops the link;
 * the primary's next compare finds the block again. The frame is a slice of a read buffer that the I/O loop
 * keeps decoding on another thread, so its payload is copied out by address and never read through the
 * buffer's internal NIO view, which the decoder uses. One applier per link; not thread-safe. Owns a zstd
 * context (native memory) once it has decompressed zstd: {@link #close()} frees it.
 */
public final class BlockApplier implements AutoCloseable
{
    private static final LZ4SafeDecompressor LZ4 = LZ4Factory.fastestInstance().safeDecompressor();

    private final Volume volume;
    private long lastLength;
    private long lastOffset;
    private long lastSeq;
    /** One zstd context for every block (the static call makes one per block). */
    private ZstdDecompressCtx zstd;
    private final BlockHasher hasher = new BlockHasher();
    private final ByteBuffer scratch = ByteBuffer.allocateDirect(WireProtocol.MAX_PAYLOAD_BYTES)
        .order(java.nio.ByteOrder.LITTLE_ENDIAN);
    /**
     * A compressed payload, copied out of the frame before it is decompressed. The frame is a slice of the
     * read buffer the I/O loop is still decoding (and checksumming through that buffer's one internal NIO
     * view) on another thread, so this thread must not read it through an NIO view it shares; a copy by
     * address needs none, and allocates nothing.
     */
    private final ByteBuffer packed = ByteBuffer.allocateDirect(WireProtocol.MAX_BODY_BYTES);

    public BlockApplier(final Volume volume)
    {
        this.volume = volume;
    }

    /** Applies a DATA body (reader index at seq); returns the seq. */
    public long applyData(final ByteBuf body)
    {
        final ByteBuffer block = decodeData(body);
        volume.write(lastOffset, block);
        return lastSeq;
    }

    /**
     * Checks and decodes a DATA body (reader index at seq) without writing it: returns this applier's scratch
     * buffer holding the block (position 0, limit its length), valid until the next call; {@link #lastOffset}
     * and {@link #lastSeq} say where it goes. A two-way link decides first whether to write it.
     */
    public ByteBuffer decodeData(final ByteBuf body)
    {
        if (body.readableBytes() < WireProtocol.DATA_HEADER_BYTES)
        {
            throw new ProtocolException("DATA frame: truncated header, " + body.readableBytes() + " bytes (expected "
                + WireProtocol.DATA_HEADER_BYTES + ")");
        }
        final long seq = body.readLong();
        final long offset = body.readLong();
        final int length = body.readInt();
        final int codecId = body.readUnsignedByte();
        body.skipBytes(3);
        final long hashHi = body.readLong();
        final long hashLo = body.readLong();
        final int payload = body.readableBytes();
        checkRange("DATA", offset, length);
        if (length > WireProtocol.MAX_PAYLOAD_BYTES)
        {
            throw new ProtocolException("DATA frame: length " + length + " (expected 1-" + WireProtocol.MAX_PAYLOAD_BYTES + ")");
        }
        final Compression codec = Compression.fromWireId(codecId);
        if (codec == null)
        {
            throw new ProtocolException("DATA frame: unknown codec " + codecId + " (expected 0-2)");
        }
        scratch.clear();
        if (codec == Compression.NONE)
        {
            if (payload != length)
            {
                throw new ProtocolException("DATA frame: raw payload of " + payload + " bytes for length " + length);
            }
            body.getBytes(body.readerIndex(), scratch.limit(length));
        }
        else
        {
            if (payload > packed.capacity())
            {
                throw new ProtocolException("DATA frame: compressed payload of " + payload + " bytes (expected at most "
                    + packed.capacity() + ")");
            }
            body.getBytes(body.readerIndex(), packed.clear().limit(payload));
            final int n = decompress(codec, payload, length);
            if (n != length)
            {
                throw new ProtocolException("DATA frame at offset " + offset + ": " + codec.configName()
                    + " payload decompressed to " + n + " bytes, expected " + length);
            }
        }
        hasher.hash(scratch, 0, length);
        if (hasher.high() != hashHi || hasher.low() != hashLo)
        {
            throw new ProtocolException("DATA frame at offset " + offset + " length " + length
                + ": XXH3-128 mismatch after decompression (block not written)");
        }
        body.skipBytes(payload);
        lastLength = length;
        lastOffset = offset;
        lastSeq = seq;
        return scratch.limit(length).position(0);
    }

    /** Applies a ZERO body (reader index at seq); returns the seq. */
    public long applyZero(final ByteBuf body)
    {
        decodeZero(body);
        volume.zeroRange(lastOffset, lastLength);
        return lastSeq;
    }

    /** Checks a ZERO body (reader index at seq) without writing: {@link #lastOffset}, {@link #lastLength}, {@link #lastSeq}. */
    public void decodeZero(final ByteBuf body)
    {
        if (body.readableBytes() < 24)
        {
            throw new ProtocolException("ZERO frame: truncated, " + body.readableBytes() + " bytes (expected 24)");
        }
        final long seq = body.readLong();
        final long offset = body.readLong();
        final long length = body.readLong();
        checkRange("ZERO", offset, length);
        lastLength = length;
        lastOffset = offset;
        lastSeq = seq;
    }

    /** Where the last frame decoded goes. */
    public long lastOffset()
    {
        return lastOffset;
    }

    /** The sequence number of the last frame decoded. */
    public long lastSeq()
    {
        return lastSeq;
    }

    /** Bytes covered by the last frame applied. */
    public long lastLength()
    {
        return lastLength;
    }

    /** Decompresses {@code packed[0, payload)} into {@code scratch}; returns the decompressed length. */
    private int decompress(final Compression codec, final int payload, final int length)
    {
        try
        {
            if (codec == Compression.LZ4)
            {
                return LZ4.decompress(packed, 0, payload, scratch, 0, length);
            }
            if (zstd == null)
            {
                zstd = new ZstdDecompressCtx();
            }
            return zstd.decompressDirectByteBuffer(scratch, 0, length, packed, 0, payload);
        }
        catch (final LZ4Exception | com.github.luben.zstd.ZstdException e)
        {
            throw new ProtocolException("DATA frame: corrupt " + codec.configName() + " payload: " + e.getMessage());
        }
    }

    /** Frees the zstd context, if any; a later zstd frame makes a new one. */
    @Override
    public void close()
    {
        if (zstd != null)
        {
            zstd.close();
            zstd = null;
        }
    }

    private void checkRange(final String what, final long offset, final long length)
    {
        if (offset < 0 || length <= 0 || offset > volume.size() - length)
        {
            throw new ProtocolException(what + " frame: offset=" + offset + " length=" + length
                + " outside the volume of " + volume.size() + " bytes");
        }
    }
}
