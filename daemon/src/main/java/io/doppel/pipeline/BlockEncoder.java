package io.doppel.pipeline;

import com.github.luben.zstd.Zstd;
import com.github.luben.zstd.ZstdCompressCtx;
import com.github.luben.zstd.ZstdException;
import io.doppel.net.WireProtocol;
import io.doppel.storage.ZeroBlocks;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import net.jpountz.lz4.LZ4Compressor;
import net.jpountz.lz4.LZ4Factory;

import java.nio.ByteBuffer;
import java.util.zip.CRC32C;

/**
 * Turns a range of volume bytes into one wire frame: a ZERO frame (no payload) when every byte is zero,
 * otherwise a DATA frame carrying the XXH3-128 of the raw bytes and the payload compressed with the
 * volume's codec, or raw when compression saves less than {@link #MIN_SAVING_RATIO}.
 *
 * <p>One encoder per sending thread: it owns its checksum state and writes straight from the source
 * (for example a mapped window) into a pooled frame buffer, so nothing is allocated per block besides
 * the pooled buffer itself. Not thread-safe. Owns a zstd context (native memory) once it has compressed
 * with zstd: {@link #close()} frees it.
 */
public final class BlockEncoder implements AutoCloseable
{
    /** Compressed payloads larger than this fraction of the raw length are sent raw. */
    public static final double MIN_SAVING_RATIO = 0.9;
    public static final int ZSTD_LEVEL = 3;

    private static final LZ4Compressor LZ4 = LZ4Factory.fastestInstance().fastCompressor();

    private Compression compression;
    private final CRC32C crc = new CRC32C();
    /**
     * One zstd context for every block: Zstd's static compress call creates and frees a context (native
     * allocation and set-up, and Java objects) per call, which cost most of the time of a 4 KiB block.
     */
    private ZstdCompressCtx zstd;
    private final BlockHasher hasher = new BlockHasher();

    private long rawBytes;
    private long payloadBytes;
    private long zeroBytes;

    public BlockEncoder(final Compression compression)
    {
        this.compression = compression;
    }

    public Compression compression()
    {
        return compression;
    }

    /** Compresses later blocks with {@code value} (a live reload changed the volume's codec). */
    public void compression(final Compression value)
    {
        compression = value;
    }

    /**
     * Encodes {@code src[index, index+length)}, which holds the volume bytes at {@code offset}.
     * {@code src} must be a direct buffer; its position and limit are not used.
     */
    public ByteBuf encode(final ByteBufAllocator alloc, final long seq, final long offset, final ByteBuffer src,
        final int index, final int length)
    {
        if (length <= 0 || length > WireProtocol.MAX_PAYLOAD_BYTES)
        {
            throw new IllegalArgumentException("block length " + length + " (expected 1-"
                + WireProtocol.MAX_PAYLOAD_BYTES + ")");
        }
        if (ZeroBlocks.isZero(src, index, length))
        {
            zeroBytes += length;
            return encodeZero(alloc, seq, offset, length);
        }
        hasher.hash(src, index, length);
        final int maxPayload = maxPayload(length);
        final ByteBuf frame = alloc.directBuffer(WireProtocol.HEADER_BYTES + WireProtocol.DATA_HEADER_BYTES + maxPayload);
        try
        {
            final int start = WireProtocol.beginFrame(frame, WireProtocol.TYPE_DATA);
            frame.writeLong(seq);
            frame.writeLong(offset);
            frame.writeInt(length);
            final int codecIndex = frame.writerIndex();
            frame.writeByte(Compression.NONE.wireId());
            frame.writeZero(3);
            frame.writeLong(hasher.high());
            frame.writeLong(hasher.low());
            final int payloadIndex = frame.writerIndex();
            final int compressed = compress(src, index, length, frame, payloadIndex, maxPayload);
            if (compressed > 0 && compressed <= length * MIN_SAVING_RATIO)
            {
                frame.setByte(codecIndex, compression.wireId());
                frame.writerIndex(payloadIndex + compressed);
            }
            else
            {
                // Absolute copy into the frame's internal view: a src.duplicate() here cost an object per block.
                final ByteBuffer out = frame.internalNioBuffer(payloadIndex, length);
                out.put(out.position(), src, index, length);
                frame.writerIndex(payloadIndex + length);
            }
            payloadBytes += frame.writerIndex() - payloadIndex;
            rawBytes += length;
            WireProtocol.endFrame(frame, start, crc);
            return frame;
        }
        catch (final RuntimeException e)
        {
            frame.release();
            throw e;
        }
    }

    /** A ZERO frame: seq u64 | offset u64 | length u64. */
    public ByteBuf encodeZero(final ByteBufAllocator alloc, final long seq, final long offset, final long length)
    {
        final ByteBuf frame = alloc.directBuffer(WireProtocol.HEADER_BYTES + 24);
        final int start = WireProtocol.beginFrame(frame, WireProtocol.TYPE_ZERO);
        frame.writeLong(seq);
        frame.writeLong(offset);
        frame.writeLong(length);
        WireProtocol.endFrame(frame, start, crc);
        return frame;
    }

    private int maxPayload(final int length)
    {
        switch (compression)
        {
            case LZ4: return Math.max(length, LZ4.maxCompressedLength(length));
            case ZSTD: return (int)Math.max(length, Zstd.compressBound(length));
            default: return length;
        }
    }

    /** Compresses into {@code dst} at {@code dstIndex}; returns the compressed length, or -1 to send raw. */
    private int compress(final ByteBuffer src, final int index, final int length, final ByteBuf dst,
        final int dstIndex, final int maxPayload)
    {
        if (compression == Compression.NONE)
        {
            return -1;
        }
        final ByteBuffer out = dst.internalNioBuffer(dstIndex, maxPayload);
        if (compression == Compression.LZ4)
        {
            return LZ4.compress(src, index, length, out, out.position(), maxPayload);
        }
        if (zstd == null)
        {
            zstd = new ZstdCompressCtx().setLevel(ZSTD_LEVEL);
        }
        try
        {
            return zstd.compressDirectByteBuffer(out, out.position(), maxPayload, src, index, length);
        }
        catch (final ZstdException e)
        {
            return -1; // sent raw
        }
    }

    /** Frees the zstd context, if any; a later zstd block makes a new one. */
    @Override
    public void close()
    {
        if (zstd != null)
        {
            zstd.close();
            zstd = null;
        }
    }

    /** Raw bytes encoded into DATA frames so far. */
    public long rawBytes()
    {
        return rawBytes;
    }

    /** Payload bytes those DATA frames carried (after compression). */
    public long payloadBytes()
    {
        return payloadBytes;
    }

    /** Bytes sent as ZERO frames (no payload). */
    public long zeroBytes()
    {
        return zeroBytes;
    }
}
