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
 * the primary's next compare finds the block again. One applier per link; not thread-safe. Owns a zstd
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
        final ByteBuffer in = payloadView(body, body.readerIndex(), payload);
        scratch.clear();
        if (codec == Compression.NONE)
        {
            if (payload != length)
            {
                throw new ProtocolException("DATA frame: raw payload of " + payload + " bytes for length " + length);
            }
            scratch.put(0, in, in.position(), length);
        }
        else
        {
            final int n = decompress(codec, in, payload, length);
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

    private int decompress(final Compression codec, final ByteBuffer in, final int payload, final int length)
    {
        try
        {
            if (codec == Compression.LZ4)
            {
                return LZ4.decompress(in, in.position(), payload, scratch, 0, length);
            }
            final ByteBuffer src = in.isDirect() ? in : ByteBuffer.allocateDirect(payload).put(in).flip();
            if (zstd == null)
            {
                zstd = new ZstdDecompressCtx();
            }
            return zstd.decompressDirectByteBuffer(scratch, 0, length, src, src.position(), payload);
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

    /**
     * A NIO view of {@code body[index, index+length)} without allocating per frame. The frame decoder emits
     * pooled slices, and Netty's derived buffers answer {@code internalNioBuffer} with a fresh
     * {@code nioBuffer} (two objects, ~128 B a frame); so for a direct slice the view comes from the buffer
     * it slices, at the slice's offset into it (the difference of their memory addresses). Anything else
     * uses the buffer's own internal view, or a merged copy when it is split over several buffers.
     */
    private static ByteBuffer payloadView(final ByteBuf body, final int index, final int length)
    {
        final ByteBuf parent = body.unwrap();
        if (parent != null && body.hasMemoryAddress() && parent.hasMemoryAddress() && parent.nioBufferCount() == 1
            && parent.unwrap() == null)
        {
            final long shift = body.memoryAddress() - parent.memoryAddress();
            if (shift >= 0 && shift + index + length <= parent.capacity())
            {
                return parent.internalNioBuffer((int)shift + index, length);
            }
        }
        return body.nioBufferCount() == 1 ? body.internalNioBuffer(index, length) : body.nioBuffer(index, length);
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
