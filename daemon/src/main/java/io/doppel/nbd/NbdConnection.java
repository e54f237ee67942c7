package io.doppel.nbd;

import io.doppel.log.Log;
import io.doppel.storage.DiskWriteException;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static io.doppel.nbd.NbdProtocol.*;

/**
 * One NBD client connection: fixed newstyle handshake and option haggling, then transmission.
 *
 * <p>Runs on an executor of its own, not the I/O event loop, because requests touch the mapped volume.
 * The channel does not auto-read; the next read is asked for only after the requests of the last one
 * are done, so a client cannot queue unbounded work. Requests are served in order, one at a time per
 * connection; clients that want parallelism open several connections ({@code CAN_MULTI_CONN}).
 *
 * <p>A request past the end of the export, or longer than the advertised maximum, gets {@code EINVAL}
 * (or {@code EOVERFLOW}) and the connection stays up; a malformed request header or option closes it.
 */
final class NbdConnection extends ByteToMessageDecoder
{
    private enum Phase
    {
        CLIENT_FLAGS, OPTIONS, TRANSMISSION, CLOSED
    }

    private final Map<String, NbdExport> exports;
    private final String component;
    /** The largest request payload ([limits].nbd-request), advertised as the maximum block size. */
    private final int maxRequest;
    private final java.util.concurrent.atomic.LongAdder oversized;
    /** STARTTLS support (null: off). */
    private final NbdTls tls;
    /** The client switched to TLS with NBD_OPT_STARTTLS. */
    private boolean tlsActive;
    private Phase phase = Phase.CLIENT_FLAGS;
    private boolean noZeroes;
    private boolean structured;
    private boolean baseAllocation;
    private volatile NbdExport export;
    /** True while {@link #decode} runs on this connection's thread: replies then join {@link #replies}. */
    private boolean decoding;
    /**
     * Simple replies produced while one read's requests are served, written as one buffer when the read
     * ends: one write task and one syscall for a whole queue depth of writes instead of one each.
     */
    private ByteBuf replies;
    /**
     * Requests wait unserved because replies above the channel's high water mark are unsent: a client that
     * sends READs and never reads the replies would otherwise make the server hold every reply in memory.
     */
    private boolean paused;

    /** The export this client entered, or null before that (read by the server on a role change). */
    String exportName()
    {
        final NbdExport e = export;
        return e == null ? null : e.name();
    }

    NbdConnection(final Map<String, NbdExport> exports, final String component, final int maxRequest,
        final java.util.concurrent.atomic.LongAdder oversized)
    {
        this(exports, component, maxRequest, oversized, null);
    }

    NbdConnection(final Map<String, NbdExport> exports, final String component, final int maxRequest,
        final java.util.concurrent.atomic.LongAdder oversized, final NbdTls tls)
    {
        this.tls = tls;
        this.exports = exports;
        this.component = component;
        this.maxRequest = maxRequest;
        this.oversized = oversized;
    }

    @Override
    public void channelActive(final ChannelHandlerContext ctx) throws Exception
    {
        final ByteBuf hello = ctx.alloc().buffer(18);
        hello.writeLong(NBDMAGIC).writeLong(IHAVEOPT).writeShort(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
        ctx.writeAndFlush(hello);
        ctx.read();
        super.channelActive(ctx);
    }

    @Override
    public void channelReadComplete(final ChannelHandlerContext ctx)
    {
        writeReplies(ctx);
        ctx.flush();
        // Not super.channelReadComplete: it asks for the next read whenever no message went down the
        // pipeline (none ever does), which would read on while replies pile up unsent.
        discardSomeReadBytes();
        ctx.fireChannelReadComplete();
        if (phase != Phase.CLOSED && !paused)
        {
            ctx.read();
        }
    }

    /** The client read enough of its replies: serve the requests left in the read buffer, then read on. */
    @Override
    public void channelWritabilityChanged(final ChannelHandlerContext ctx) throws Exception
    {
        if (paused && ctx.channel().isWritable() && phase != Phase.CLOSED)
        {
            paused = false;
            channelRead(ctx, Unpooled.EMPTY_BUFFER);
            channelReadComplete(ctx);
        }
        ctx.fireChannelWritabilityChanged();
    }

    @Override
    protected void decode(final ChannelHandlerContext ctx, final ByteBuf in, final List<Object> out)
    {
        decoding = true;
        try
        {
            decodeAll(ctx, in);
        }
        finally
        {
            decoding = false;
        }
    }

    private void decodeAll(final ChannelHandlerContext ctx, final ByteBuf in)
    {
        while (phase != Phase.CLOSED && in.isReadable())
        {
            final boolean progressed;
            switch (phase)
            {
                case CLIENT_FLAGS: progressed = clientFlags(ctx, in); break;
                case OPTIONS: progressed = option(ctx, in); break;
                default: progressed = request(ctx, in); break;
            }
            if (!progressed)
            {
                return;
            }
        }
        if (phase == Phase.CLOSED)
        {
            in.skipBytes(in.readableBytes());
        }
    }

    private boolean clientFlags(final ChannelHandlerContext ctx, final ByteBuf in)
    {
        if (in.readableBytes() < 4)
        {
            return false;
        }
        final int flags = in.readInt();
        if ((flags & CLIENT_FLAG_FIXED_NEWSTYLE) == 0
            || (flags & ~(CLIENT_FLAG_FIXED_NEWSTYLE | CLIENT_FLAG_NO_ZEROES)) != 0)
        {
            close(ctx, "client flags 0x" + Integer.toHexString(flags) + " (expected fixed newstyle, optionally"
                + " no-zeroes, and nothing else)");
            return true;
        }
        noZeroes = (flags & CLIENT_FLAG_NO_ZEROES) != 0;
        phase = Phase.OPTIONS;
        return true;
    }

    // ---------------------------------------------------------------- option haggling

    private boolean option(final ChannelHandlerContext ctx, final ByteBuf in)
    {
        if (in.readableBytes() < 16)
        {
            return false;
        }
        final int start = in.readerIndex();
        final long magic = in.getLong(start);
        final int option = in.getInt(start + 8);
        final long length = in.getUnsignedInt(start + 12);
        if (magic != IHAVEOPT)
        {
            close(ctx, "bad option magic 0x" + Long.toHexString(magic));
            return true;
        }
        if (length > MAX_OPTION_BYTES)
        {
            close(ctx, "option " + option + " of " + length + " bytes (at most " + MAX_OPTION_BYTES + ")");
            return true;
        }
        if (in.readableBytes() < 16 + length)
        {
            return false;
        }
        in.skipBytes(16);
        final ByteBuf data = in.readSlice((int)length);
        if (option == OPT_STARTTLS)
        {
            startTls(ctx, data, in);
            return true;
        }
        if (tls != null && tls.required() && !tlsActive && option != OPT_ABORT)
        {
            final String why = "TLS is required on this server ([node].nbd-tls = \"require\"): send NBD_OPT_STARTTLS"
                + " first (qemu: --object tls-creds-x509,id=tls0,endpoint=client,dir=... and tls-creds=tls0)";
            if (option == OPT_EXPORT_NAME)
            {
                close(ctx, "plaintext NBD_OPT_EXPORT_NAME refused: " + why); // no error reply exists for it
                return true;
            }
            Log.warn(component, "NBD client " + ctx.channel().remoteAddress() + ": option " + option
                + " in plaintext refused: TLS is required");
            optionError(ctx, option, REP_ERR_TLS_REQD, why);
            return true;
        }
        switch (option)
        {
            case OPT_EXPORT_NAME: exportName(ctx, data); break;
            case OPT_ABORT:
                optionReply(ctx, option, REP_ACK, null);
                close(ctx, null);
                break;
            case OPT_LIST: list(ctx, option, data); break;
            case OPT_INFO: case OPT_GO: infoOrGo(ctx, option, data); break;
            case OPT_STRUCTURED_REPLY:
                if (data.isReadable())
                {
                    optionError(ctx, option, REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data");
                }
                else
                {
                    structured = true;
                    optionReply(ctx, option, REP_ACK, null);
                }
                break;
            case OPT_LIST_META_CONTEXT: case OPT_SET_META_CONTEXT: metaContext(ctx, option, data); break;
            default:
                optionError(ctx, option, REP_ERR_UNSUP, "option " + option + " is not supported by doppel");
        }
        return true;
    }

    /**
     * NBD_OPT_STARTTLS: the ACK goes out in plaintext, then a TLS handler goes in front of this one before
     * anything more is read, and option haggling starts again inside TLS (what was agreed before is forgotten).
     */
    private void startTls(final ChannelHandlerContext ctx, final ByteBuf data, final ByteBuf in)
    {
        if (tls == null)
        {
            optionError(ctx, OPT_STARTTLS, REP_ERR_UNSUP, "TLS is not enabled on this server ([node].nbd-tls)");
            return;
        }
        if (tlsActive || data.isReadable())
        {
            optionError(ctx, OPT_STARTTLS, REP_ERR_INVALID, tlsActive ? "TLS is already on"
                : "NBD_OPT_STARTTLS takes no data");
            return;
        }
        if (in.isReadable())
        {
            close(ctx, "data sent after NBD_OPT_STARTTLS before its reply (" + in.readableBytes() + " bytes)");
            return;
        }
        optionReply(ctx, OPT_STARTTLS, REP_ACK, null);
        writeReplies(ctx);
        ctx.flush(); // bound to the handlers in front of this one now: the ACK leaves unencrypted
        final io.netty.handler.ssl.SslHandler handler = tls.newHandler(ctx.alloc());
        final java.net.SocketAddress client = ctx.channel().remoteAddress();
        handler.handshakeFuture().addListener(f ->
        {
            if (f.isSuccess())
            {
                Log.debug(component, "NBD client " + client + ": TLS on (" + handler.engine().getSession().getProtocol()
                    + ", " + handler.engine().getSession().getCipherSuite() + ")");
            }
            else
            {
                Log.warn(component, "NBD client " + client + ": TLS handshake failed: " + f.cause().getMessage()
                    + "; closing (nothing was read or written)");
            }
        });
        ctx.pipeline().addBefore("nbd", "tls", handler);
        tlsActive = true;
        structured = false;
        baseAllocation = false;
    }

    private void exportName(final ChannelHandlerContext ctx, final ByteBuf data)
    {
        final String name = data.toString(StandardCharsets.UTF_8);
        final NbdExport e = exports.get(name);
        if (e == null)
        {
            // NBD_OPT_EXPORT_NAME has no error reply: the only answer is to hang up.
            close(ctx, "no export named \"" + name + "\" (exports: " + String.join(", ", exports.keySet()) + ")");
            return;
        }
        final ByteBuf reply = ctx.alloc().buffer(134);
        reply.writeLong(e.size()).writeShort(transmissionFlags(e));
        if (!noZeroes)
        {
            reply.writeZero(124);
        }
        ctx.write(reply);
        enter(e);
    }

    private void list(final ChannelHandlerContext ctx, final int option, final ByteBuf data)
    {
        if (data.isReadable())
        {
            optionError(ctx, option, REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
            return;
        }
        for (final String name : exports.keySet())
        {
            final byte[] bytes = name.getBytes(StandardCharsets.UTF_8);
            final ByteBuf b = ctx.alloc().buffer(4 + bytes.length);
            b.writeInt(bytes.length).writeBytes(bytes);
            optionReply(ctx, option, REP_SERVER, b);
        }
        optionReply(ctx, option, REP_ACK, null);
    }

    private void infoOrGo(final ChannelHandlerContext ctx, final int option, final ByteBuf data)
    {
        if (data.readableBytes() < 6)
        {
            optionError(ctx, option, REP_ERR_INVALID, "truncated NBD_OPT_INFO/GO");
            return;
        }
        final long nameLength = data.readUnsignedInt();
        if (nameLength > data.readableBytes() - 2)
        {
            optionError(ctx, option, REP_ERR_INVALID, "export name length " + nameLength + " exceeds the option");
            return;
        }
        final String name = data.readCharSequence((int)nameLength, StandardCharsets.UTF_8).toString();
        final int requests = data.readUnsignedShort();
        if (data.readableBytes() != requests * 2)
        {
            optionError(ctx, option, REP_ERR_INVALID, "information request count does not match the option length");
            return;
        }
        final NbdExport e = exports.get(name);
        if (e == null)
        {
            optionError(ctx, option, REP_ERR_UNKNOWN, "no export named \"" + name + "\" (exports: "
                + String.join(", ", exports.keySet()) + ")");
            return;
        }
        final ByteBuf info = ctx.alloc().buffer(12);
        info.writeShort(INFO_EXPORT).writeLong(e.size()).writeShort(transmissionFlags(e));
        optionReply(ctx, option, REP_INFO, info);
        final ByteBuf sizes = ctx.alloc().buffer(14);
        sizes.writeShort(INFO_BLOCK_SIZE).writeInt(MIN_BLOCK).writeInt(PREFERRED_BLOCK).writeInt(maxRequest);
        optionReply(ctx, option, REP_INFO, sizes);
        for (int i = 0; i < requests; i++)
        {
            if (data.readUnsignedShort() == INFO_NAME)
            {
                final byte[] bytes = e.name().getBytes(StandardCharsets.UTF_8);
                final ByteBuf b = ctx.alloc().buffer(2 + bytes.length);
                b.writeShort(INFO_NAME).writeBytes(bytes);
                optionReply(ctx, option, REP_INFO, b);
            }
        }
        optionReply(ctx, option, REP_ACK, null);
        if (option == OPT_GO)
        {
            enter(e);
        }
    }

    private void metaContext(final ChannelHandlerContext ctx, final int option, final ByteBuf data)
    {
        if (option == OPT_SET_META_CONTEXT && !structured)
        {
            optionError(ctx, option, REP_ERR_INVALID, "NBD_OPT_SET_META_CONTEXT needs structured replies first");
            return;
        }
        if (data.readableBytes() < 8)
        {
            optionError(ctx, option, REP_ERR_INVALID, "truncated meta context option");
            return;
        }
        final long nameLength = data.readUnsignedInt();
        if (nameLength > data.readableBytes() - 4)
        {
            optionError(ctx, option, REP_ERR_INVALID, "export name length " + nameLength + " exceeds the option");
            return;
        }
        final String name = data.readCharSequence((int)nameLength, StandardCharsets.UTF_8).toString();
        if (!exports.containsKey(name))
        {
            optionError(ctx, option, REP_ERR_UNKNOWN, "no export named \"" + name + "\"");
            return;
        }
        final long queries = data.readUnsignedInt();
        final List<String> wanted = new ArrayList<>();
        for (long i = 0; i < queries; i++)
        {
            if (data.readableBytes() < 4)
            {
                optionError(ctx, option, REP_ERR_INVALID, "truncated meta context query");
                return;
            }
            final long length = data.readUnsignedInt();
            if (length > data.readableBytes())
            {
                optionError(ctx, option, REP_ERR_INVALID, "meta context query length " + length + " exceeds the option");
                return;
            }
            wanted.add(data.readCharSequence((int)length, StandardCharsets.UTF_8).toString());
        }
        boolean selected = false;
        if ((queries == 0 && option == OPT_LIST_META_CONTEXT) || wanted.contains(BASE_ALLOCATION)
            || wanted.contains("base:"))
        {
            final byte[] bytes = BASE_ALLOCATION.getBytes(StandardCharsets.US_ASCII);
            final ByteBuf b = ctx.alloc().buffer(4 + bytes.length);
            b.writeInt(BASE_ALLOCATION_ID).writeBytes(bytes);
            optionReply(ctx, option, REP_META_CONTEXT, b);
            selected = true;
        }
        if (option == OPT_SET_META_CONTEXT)
        {
            baseAllocation = selected;
        }
        optionReply(ctx, option, REP_ACK, null);
    }

    private int transmissionFlags(final NbdExport e)
    {
        int flags = TFLAG_HAS_FLAGS | TFLAG_SEND_FLUSH | TFLAG_SEND_FUA | TFLAG_CAN_MULTI_CONN;
        if (structured)
        {
            flags |= TFLAG_SEND_DF;
        }
        if (e.readOnly())
        {
            flags |= TFLAG_READ_ONLY;
        }
        else
        {
            flags |= TFLAG_SEND_TRIM | TFLAG_SEND_WRITE_ZEROES;
        }
        return flags;
    }

    private void enter(final NbdExport e)
    {
        export = e;
        phase = Phase.TRANSMISSION;
        Log.debug(component, "client entered transmission on export " + e.name()
            + (structured ? " (structured replies)" : ""));
    }

    private void optionReply(final ChannelHandlerContext ctx, final int option, final int type, final ByteBuf data)
    {
        final int length = data == null ? 0 : data.readableBytes();
        final ByteBuf header = ctx.alloc().buffer(20);
        header.writeLong(OPTION_REPLY_MAGIC).writeInt(option).writeInt(type).writeInt(length);
        ctx.write(header);
        if (data != null)
        {
            ctx.write(data);
        }
    }

    private void optionError(final ChannelHandlerContext ctx, final int option, final int type, final String message)
    {
        optionReply(ctx, option, type, ctx.alloc().buffer().writeBytes(message.getBytes(StandardCharsets.UTF_8)));
    }

    // ---------------------------------------------------------------- transmission

    private boolean request(final ChannelHandlerContext ctx, final ByteBuf in)
    {
        if (in.readableBytes() < REQUEST_HEADER_BYTES)
        {
            return false;
        }
        if (!ctx.channel().isWritable())
        {
            // The client does not read its replies as fast as it asks: leave the rest of its requests in the
            // read buffer and read no more until the unsent replies drain (channelWritabilityChanged).
            paused = true;
            return false;
        }
        final int start = in.readerIndex();
        final int magic = in.getInt(start);
        final int flags = in.getUnsignedShort(start + 4);
        final int type = in.getUnsignedShort(start + 6);
        final long cookie = in.getLong(start + 8);
        final long offset = in.getLong(start + 16);
        final long length = in.getUnsignedInt(start + 24);
        if (magic != REQUEST_MAGIC)
        {
            close(ctx, "bad request magic 0x" + Integer.toHexString(magic));
            return true;
        }
        if (type == CMD_WRITE)
        {
            if (length > maxRequest)
            {
                // The payload cannot be skipped safely without buffering it: hang up, as the spec allows.
                oversized.increment();
                close(ctx, "write of " + length + " bytes exceeds the maximum " + maxRequest + " ([limits].nbd-request)");
                return true;
            }
            if (in.readableBytes() < REQUEST_HEADER_BYTES + length)
            {
                return false;
            }
        }
        in.skipBytes(REQUEST_HEADER_BYTES);
        final ByteBuf payload = type == CMD_WRITE ? in.readSlice((int)length) : null;
        try
        {
            serve(ctx, flags, type, cookie, offset, length, payload);
        }
        catch (final RuntimeException | InternalError e)
        {
            // A failed write or flush (disk full, I/O error) or an unexpected fault: an error reply, the
            // connection kept. The client is never told a write succeeded that did not.
            final boolean full = e instanceof DiskWriteException && ((DiskWriteException)e).noSpace();
            Log.error(component, "export " + export.name() + ": " + commandName(type) + " at " + offset + "+" + length
                + " failed: " + (e instanceof DiskWriteException ? e.getMessage() : e.toString()));
            if (e instanceof DiskWriteException)
            {
                export.diskFault((DiskWriteException)e);
            }
            error(ctx, cookie, type, full ? ENOSPC : EIO, commandName(type) + " failed: " + e.getMessage());
        }
        return true;
    }

    private void serve(final ChannelHandlerContext ctx, final int flags, final int type, final long cookie,
        final long offset, final long length, final ByteBuf payload)
    {
        final long start = System.nanoTime();
        if (type == CMD_DISC)
        {
            export.flush(() -> close(ctx, null));
            phase = Phase.CLOSED;
            return;
        }
        if (type == CMD_FLUSH)
        {
            export.flush(() ->
            {
                okLater(ctx, cookie);
                export.served(CMD_FLUSH, System.nanoTime() - start);
            });
            return;
        }
        if (type > CMD_BLOCK_STATUS)
        {
            error(ctx, cookie, type, EINVAL, "unknown command " + type);
            return;
        }
        if (offset < 0 || length > export.size() || offset > export.size() - length)
        {
            error(ctx, cookie, type, EINVAL, commandName(type) + " at offset " + offset + " length " + length
                + " is past the end of the export (" + export.size() + " bytes)");
            return;
        }
        if (length > maxRequest && (type == CMD_READ))
        {
            oversized.increment();
            error(ctx, cookie, type, EOVERFLOW, "read of " + length + " bytes exceeds the maximum " + maxRequest
                + " ([limits].nbd-request)");
            return;
        }
        final boolean writes = type == CMD_WRITE || type == CMD_TRIM || type == CMD_WRITE_ZEROES;
        if (writes && export.readOnly())
        {
            error(ctx, cookie, type, EPERM, "export " + export.name() + " is read-only (a standby copy)");
            return;
        }
        if (length == 0 && type != CMD_BLOCK_STATUS)
        {
            // Nothing to do: no frame, nothing to wait for. A READ still needs a structured reply.
            if (structured && type == CMD_READ)
            {
                final ByteBuf none = ctx.alloc().buffer(20);
                none.writeInt(STRUCTURED_REPLY_MAGIC).writeShort(REPLY_FLAG_DONE).writeShort(REPLY_TYPE_NONE)
                    .writeLong(cookie).writeInt(0);
                ctx.write(none);
            }
            else
            {
                ok(ctx, cookie);
            }
            return;
        }
        if (length == 0 || offset == export.size())
        {
            error(ctx, cookie, type, EINVAL, "BLOCK_STATUS of an empty range at offset " + offset);
            return;
        }
        switch (type)
        {
            case CMD_READ:
                read(ctx, cookie, offset, (int)length);
                export.served(type, System.nanoTime() - start);
                break;
            case CMD_WRITE:
                finishWrite(ctx, flags, cookie, export.write(offset, payload.nioBuffer()), type, start);
                break;
            case CMD_TRIM:
                finishWrite(ctx, flags, cookie, export.writeZeroes(offset, length, true), type, start);
                break;
            case CMD_WRITE_ZEROES:
                finishWrite(ctx, flags, cookie, export.writeZeroes(offset, length, (flags & CMD_FLAG_NO_HOLE) == 0),
                    type, start);
                break;
            case CMD_CACHE:
                ok(ctx, cookie);
                export.served(type, System.nanoTime() - start);
                break;
            case CMD_BLOCK_STATUS:
                blockStatus(ctx, flags, cookie, offset, length);
                export.served(type, System.nanoTime() - start);
                break;
            default:
                error(ctx, cookie, type, EINVAL, "unknown command " + type);
        }
    }

    /** Replies when the volume's acknowledgement level allows (at once in async mode). */
    private void finishWrite(final ChannelHandlerContext ctx, final int flags, final long cookie, final long token,
        final int type, final long start)
    {
        export.whenDone(token, (flags & CMD_FLAG_FUA) != 0, () ->
        {
            okLater(ctx, cookie);
            export.served(type, System.nanoTime() - start);
        });
    }

    /**
     * A success reply. Inside this connection's read it joins the batch written when the read ends; from
     * another thread (the link's ack path) or later, it is written and flushed at once.
     */
    private void okLater(final ChannelHandlerContext ctx, final long cookie)
    {
        if (decoding && ctx.executor().inEventLoop())
        {
            if (replies == null)
            {
                replies = ctx.alloc().directBuffer(16 * 64);
            }
            replies.writeInt(SIMPLE_REPLY_MAGIC).writeInt(0).writeLong(cookie);
            return;
        }
        final ByteBuf reply = ctx.alloc().buffer(16);
        reply.writeInt(SIMPLE_REPLY_MAGIC).writeInt(0).writeLong(cookie);
        ctx.writeAndFlush(reply);
    }

    private void read(final ChannelHandlerContext ctx, final long cookie, final long offset, final int length)
    {
        final ByteBuf data = ctx.alloc().directBuffer(length);
        try
        {
            final ByteBuffer nio = data.nioBuffer(0, length);
            export.read(offset, nio);
            data.writerIndex(length);
        }
        catch (final RuntimeException | InternalError e)
        {
            data.release();
            throw e;
        }
        if (structured)
        {
            final ByteBuf header = ctx.alloc().buffer(28);
            header.writeInt(STRUCTURED_REPLY_MAGIC).writeShort(REPLY_FLAG_DONE).writeShort(REPLY_TYPE_OFFSET_DATA)
                .writeLong(cookie).writeInt(8 + length).writeLong(offset);
            ctx.write(header);
        }
        else
        {
            final ByteBuf header = ctx.alloc().buffer(16);
            header.writeInt(SIMPLE_REPLY_MAGIC).writeInt(0).writeLong(cookie);
            ctx.write(header);
        }
        ctx.write(data);
    }

    private void blockStatus(final ChannelHandlerContext ctx, final int flags, final long cookie, final long offset,
        final long length)
    {
        if (!structured || !baseAllocation)
        {
            error(ctx, cookie, CMD_BLOCK_STATUS, EINVAL, "NBD_CMD_BLOCK_STATUS needs structured replies and the "
                + BASE_ALLOCATION + " context");
            return;
        }
        // Extents at 4 KiB granularity (aligned to it), data or zero, at most 1024 descriptors per reply.
        final boolean one = (flags & CMD_FLAG_REQ_ONE) != 0;
        final int maxExtents = one ? 1 : 1024;
        final ByteBuf body = ctx.alloc().buffer(4 + 8 * Math.min(maxExtents, 64));
        try
        {
            body.writeInt(BASE_ALLOCATION_ID);
            long pos = offset;
            // A reply may cover less than asked; the client asks again from where it ends.
            final long end = offset + Math.min(length, MAX_STATUS_BYTES);
            int extents = 0;
            while (pos < end && extents < maxExtents)
            {
                final boolean zero = isZeroPiece(pos, end);
                final long runStart = pos;
                pos = pieceEnd(pos, end);
                while (pos < end && isZeroPiece(pos, end) == zero && pos - runStart < (1L << 30))
                {
                    pos = pieceEnd(pos, end);
                }
                body.writeInt((int)(pos - runStart)).writeInt(zero ? STATE_ZERO : 0);
                extents++;
            }
        }
        catch (final RuntimeException | InternalError e)
        {
            body.release();
            throw e;
        }
        final ByteBuf header = ctx.alloc().buffer(20);
        header.writeInt(STRUCTURED_REPLY_MAGIC).writeShort(REPLY_FLAG_DONE).writeShort(REPLY_TYPE_BLOCK_STATUS)
            .writeLong(cookie).writeInt(body.readableBytes());
        ctx.write(header);
        ctx.write(body);
    }

    private static long pieceEnd(final long pos, final long end)
    {
        return Math.min(end, (pos & ~(PREFERRED_BLOCK - 1L)) + PREFERRED_BLOCK);
    }

    private boolean isZeroPiece(final long pos, final long end)
    {
        final long to = Math.min(pieceEnd(pos, end), export.size());
        return to > pos && export.isZero(pos, to - pos);
    }

    private void ok(final ChannelHandlerContext ctx, final long cookie)
    {
        final ByteBuf reply = ctx.alloc().buffer(16);
        reply.writeInt(SIMPLE_REPLY_MAGIC).writeInt(0).writeLong(cookie);
        ctx.write(reply);
    }

    private void error(final ChannelHandlerContext ctx, final long cookie, final int type, final int errno,
        final String message)
    {
        Log.debug(component, message);
        if (structured)
        {
            final byte[] text = message.getBytes(StandardCharsets.UTF_8);
            final int n = Math.min(text.length, 4096);
            final ByteBuf reply = ctx.alloc().buffer(20 + 6 + n);
            reply.writeInt(STRUCTURED_REPLY_MAGIC).writeShort(REPLY_FLAG_DONE).writeShort(REPLY_TYPE_ERROR)
                .writeLong(cookie).writeInt(6 + n).writeInt(errno).writeShort(n).writeBytes(text, 0, n);
            ctx.write(reply);
        }
        else
        {
            final ByteBuf reply = ctx.alloc().buffer(16);
            reply.writeInt(SIMPLE_REPLY_MAGIC).writeInt(errno).writeLong(cookie);
            ctx.write(reply);
        }
    }

    @Override
    protected void handlerRemoved0(final ChannelHandlerContext ctx)
    {
        if (replies != null)
        {
            replies.release(); // the channel closed in the middle of a read
            replies = null;
        }
    }

    /** Writes the batched replies, if any (not flushed). */
    private void writeReplies(final ChannelHandlerContext ctx)
    {
        final ByteBuf batch = replies;
        if (batch != null)
        {
            replies = null;
            ctx.write(batch);
        }
    }

    private void close(final ChannelHandlerContext ctx, final String why)
    {
        writeReplies(ctx); // the replies to what was served before the close go out first
        if (why != null)
        {
            Log.warn(component, "closing NBD client " + ctx.channel().remoteAddress() + ": " + why);
        }
        phase = Phase.CLOSED;
        ctx.writeAndFlush(ctx.alloc().buffer(0)).addListener(ChannelFutureListener.CLOSE);
    }

    @Override
    public void exceptionCaught(final ChannelHandlerContext ctx, final Throwable cause)
    {
        Log.warn(component, "NBD client " + ctx.channel().remoteAddress() + ": " + cause + "; closing");
        phase = Phase.CLOSED;
        ctx.close();
    }

    static String commandName(final int type)
    {
        switch (type)
        {
            case CMD_READ: return "READ";
            case CMD_WRITE: return "WRITE";
            case CMD_DISC: return "DISC";
            case CMD_FLUSH: return "FLUSH";
            case CMD_TRIM: return "TRIM";
            case CMD_CACHE: return "CACHE";
            case CMD_WRITE_ZEROES: return "WRITE_ZEROES";
            case CMD_BLOCK_STATUS: return "BLOCK_STATUS";
            default: return "command " + type;
        }
    }
}
