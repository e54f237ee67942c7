package io.doppel.net;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.codec.CorruptedFrameException;

import java.util.List;
import java.util.zip.CRC32C;

import static io.doppel.net.WireProtocol.CHECKSUM_BYTES;
import static io.doppel.net.WireProtocol.LENGTH_FIELD_BYTES;
import static io.doppel.net.WireProtocol.MIN_LENGTH;
import static io.doppel.net.WireProtocol.TYPE_MAX;
import static io.doppel.net.WireProtocol.TYPE_OFFSET;

/**
 * Splits the byte stream into checked frames. Emits each frame as a retained slice whose reader index
 * sits on the type byte. The length is checked against a hard maximum before any body is buffered;
 * the checksum and type are checked before the frame goes further. After the first bad frame the
 * decoder is CORRUPTED: it discards all further input and the connection is closed by the handler
 * that sees the exception.
 */
public final class FrameDecoder extends ByteToMessageDecoder
{
    private final int maxLength;
    private final CRC32C crc = new CRC32C();
    private boolean corrupted;

    public FrameDecoder()
    {
        this(WireProtocol.MAX_LENGTH);
    }

    public FrameDecoder(final int maxLength)
    {
        if (maxLength < MIN_LENGTH || maxLength > WireProtocol.MAX_LENGTH)
        {
            throw new IllegalArgumentException("maxLength=" + maxLength + ": expected " + MIN_LENGTH + "-"
                + WireProtocol.MAX_LENGTH);
        }
        this.maxLength = maxLength;
    }

    @Override
    protected void decode(final ChannelHandlerContext ctx, final ByteBuf in, final List<Object> out)
    {
        if (corrupted)
        {
            in.skipBytes(in.readableBytes());
            return;
        }
        if (in.readableBytes() < LENGTH_FIELD_BYTES)
        {
            return;
        }
        final int start = in.readerIndex();
        final long length = in.getUnsignedInt(start);
        if (length < MIN_LENGTH || length > maxLength)
        {
            failOn(in, "frame length " + length + " (expected " + MIN_LENGTH + "-" + maxLength + ")");
        }
        if (in.readableBytes() < LENGTH_FIELD_BYTES + length)
        {
            return;
        }
        final int stored = in.getInt(start + LENGTH_FIELD_BYTES);
        final int actual = WireProtocol.checksum(in, start + TYPE_OFFSET, (int)length - CHECKSUM_BYTES, crc);
        if (stored != actual)
        {
            failOn(in, "frame checksum mismatch (stored 0x" + Integer.toHexString(stored) + ", computed 0x"
                + Integer.toHexString(actual) + ")");
        }
        final int type = in.getUnsignedByte(start + TYPE_OFFSET);
        if (type == 0 || type > TYPE_MAX)
        {
            failOn(in, "unknown frame type " + type + " (expected 1-" + TYPE_MAX + ")");
        }
        final ByteBuf frame = in.readRetainedSlice(LENGTH_FIELD_BYTES + (int)length);
        frame.skipBytes(TYPE_OFFSET);
        out.add(frame);
    }

    @Override
    protected void decodeLast(final ChannelHandlerContext ctx, final ByteBuf in, final List<Object> out)
        throws Exception
    {
        decode(ctx, in, out);
        if (!corrupted && in.isReadable())
        {
            final int have = in.readableBytes();
            final String need = have >= LENGTH_FIELD_BYTES
                ? " of a " + (LENGTH_FIELD_BYTES + in.getUnsignedInt(in.readerIndex())) + "-byte frame" : "";
            failOn(in, "truncated frame: connection ended with " + have + " bytes" + need);
        }
    }

    private void failOn(final ByteBuf in, final String message)
    {
        corrupted = true;
        in.skipBytes(in.readableBytes());
        throw new CorruptedFrameException(message);
    }
}
