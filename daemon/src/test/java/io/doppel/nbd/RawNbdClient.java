package io.doppel.nbd;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * A hand-written NBD client on a plain socket for feeding the server malformed traffic: every step of the
 * fixed newstyle handshake and every request is sent byte by byte as the test says, and replies are
 * parsed without trusting them.
 */
final class RawNbdClient implements AutoCloseable
{
    static final long NBDMAGIC = 0x4e42444d41474943L;
    static final long IHAVEOPT = 0x49484156454F5054L;
    static final long OPTION_REPLY_MAGIC = 0x0003e889045565a9L;
    static final int REQUEST_MAGIC = 0x25609513;
    static final int SIMPLE_REPLY_MAGIC = 0x67446698;
    static final int STRUCTURED_REPLY_MAGIC = 0x668e33ef;

    static final int OPT_EXPORT_NAME = 1;
    static final int OPT_LIST = 3;
    static final int OPT_GO = 7;
    static final int OPT_STRUCTURED_REPLY = 8;
    static final int REP_ACK = 1;
    static final int REP_SERVER = 2;
    static final int REP_INFO = 3;
    static final int REP_ERR_UNKNOWN = 0x80000006;

    static final int CMD_READ = 0;
    static final int CMD_WRITE = 1;
    static final int CMD_DISC = 2;
    static final int CMD_FLUSH = 3;
    static final int CMD_TRIM = 4;
    static final int CMD_WRITE_ZEROES = 6;

    static final int TFLAG_READ_ONLY = 1 << 1;
    static final int REPLY_FLAG_DONE = 1;
    static final int REPLY_TYPE_NONE = 0;
    static final int REPLY_TYPE_OFFSET_DATA = 1;
    static final int REPLY_TYPE_ERROR = (1 << 15) + 1;

    static final int EPERM = 1;
    static final int EINVAL = 22;

    final Socket socket;
    final DataInputStream in;
    final DataOutputStream out;
    /** Handshake flags the server sent. */
    int handshakeFlags;
    /** After GO / EXPORT_NAME: the export's size and transmission flags. */
    long exportSize = -1;
    int transmissionFlags;
    private long nextCookie = 1;

    RawNbdClient(final int port) throws IOException
    {
        socket = new Socket(InetAddress.getLoopbackAddress(), port);
        socket.setSoTimeout(5_000);
        socket.setTcpNoDelay(true);
        in = new DataInputStream(socket.getInputStream());
        out = new DataOutputStream(socket.getOutputStream());
    }

    /** Connects and reads the server's greeting (NBDMAGIC, IHAVEOPT, handshake flags). */
    static RawNbdClient greeted(final int port) throws IOException
    {
        final RawNbdClient c = new RawNbdClient(port);
        final long magic = c.in.readLong();
        final long opt = c.in.readLong();
        if (magic != NBDMAGIC || opt != IHAVEOPT)
        {
            c.close();
            throw new AssertionError("bad greeting: 0x" + Long.toHexString(magic) + " 0x" + Long.toHexString(opt));
        }
        c.handshakeFlags = c.in.readUnsignedShort();
        return c;
    }

    /** Greeted, client flags 3 (fixed newstyle, no zeroes) sent, export {@code name} entered with GO. */
    static RawNbdClient open(final int port, final String name) throws IOException
    {
        final RawNbdClient c = greeted(port);
        c.sendClientFlags(3);
        final List<OptionReply> replies = c.go(name);
        final OptionReply last = replies.get(replies.size() - 1);
        if (last.type != REP_ACK)
        {
            c.close();
            throw new AssertionError("NBD_OPT_GO " + name + " failed: " + replies);
        }
        return c;
    }

    void sendClientFlags(final int flags) throws IOException
    {
        out.writeInt(flags);
        out.flush();
    }

    void sendOption(final int option, final byte[] data) throws IOException
    {
        out.writeLong(IHAVEOPT);
        out.writeInt(option);
        out.writeInt(data.length);
        out.write(data);
        out.flush();
    }

    /** Sends NBD_OPT_GO for {@code name} (no information requests) and reads the replies to the final one. */
    List<OptionReply> go(final String name) throws IOException
    {
        final byte[] n = name.getBytes(StandardCharsets.UTF_8);
        final ByteArrayOutputStream b = new ByteArrayOutputStream();
        final DataOutputStream d = new DataOutputStream(b);
        d.writeInt(n.length);
        d.write(n);
        d.writeShort(0);
        sendOption(OPT_GO, b.toByteArray());
        return readOptionReplies(OPT_GO);
    }

    /** Reads option replies until a final one (ACK or an error); remembers NBD_INFO_EXPORT. */
    List<OptionReply> readOptionReplies(final int option) throws IOException
    {
        final List<OptionReply> all = new ArrayList<>();
        while (true)
        {
            final OptionReply r = readOptionReply();
            all.add(r);
            if (r.option != option)
            {
                throw new AssertionError("reply for option " + r.option + ", expected " + option + ": " + all);
            }
            if (r.type == REP_INFO && r.data.length >= 12 && r.data[0] == 0 && r.data[1] == 0)
            {
                final java.nio.ByteBuffer bb = java.nio.ByteBuffer.wrap(r.data);
                bb.getShort();
                exportSize = bb.getLong();
                transmissionFlags = bb.getShort() & 0xffff;
            }
            if (r.type == REP_ACK || (r.type & 0x80000000) != 0)
            {
                return all;
            }
        }
    }

    OptionReply readOptionReply() throws IOException
    {
        final long magic = in.readLong();
        if (magic != OPTION_REPLY_MAGIC)
        {
            throw new AssertionError("bad option reply magic 0x" + Long.toHexString(magic));
        }
        final int option = in.readInt();
        final int type = in.readInt();
        final int length = in.readInt();
        if (length < 0 || length > (1 << 20))
        {
            throw new AssertionError("option reply of " + Integer.toUnsignedString(length) + " bytes");
        }
        final byte[] data = new byte[length];
        in.readFully(data);
        return new OptionReply(option, type, data);
    }

    /** Sends a request header (and {@code payload}, if any); returns its cookie. */
    long request(final int flags, final int type, final long offset, final long length, final byte[] payload)
        throws IOException
    {
        final long cookie = nextCookie++;
        out.writeInt(REQUEST_MAGIC);
        out.writeShort(flags);
        out.writeShort(type);
        out.writeLong(cookie);
        out.writeLong(offset);
        out.writeInt((int)length);
        if (payload != null)
        {
            out.write(payload);
        }
        out.flush();
        return cookie;
    }

    /** Reads one simple reply header (no data): returns the error; fails on a wrong magic or cookie. */
    int simpleReply(final long cookie) throws IOException
    {
        final int magic = in.readInt();
        if (magic != SIMPLE_REPLY_MAGIC)
        {
            throw new AssertionError("expected a simple reply, got magic 0x" + Integer.toHexString(magic));
        }
        final int error = in.readInt();
        final long got = in.readLong();
        if (got != cookie)
        {
            throw new AssertionError("reply for cookie " + got + ", expected " + cookie);
        }
        return error;
    }

    /** A simple-reply READ of {@code length} bytes at {@code offset}; fails unless it succeeds. */
    byte[] read(final long offset, final int length) throws IOException
    {
        final long cookie = request(0, CMD_READ, offset, length, null);
        final int error = simpleReply(cookie);
        if (error != 0)
        {
            throw new AssertionError("READ " + offset + "+" + length + " failed with errno " + error);
        }
        final byte[] data = new byte[length];
        in.readFully(data);
        return data;
    }

    /** One structured reply chunk. */
    Chunk structuredChunk() throws IOException
    {
        final int magic = in.readInt();
        if (magic != STRUCTURED_REPLY_MAGIC)
        {
            throw new AssertionError("expected a structured reply chunk (magic 0x668e33ef), got magic 0x"
                + Integer.toHexString(magic));
        }
        final int flags = in.readUnsignedShort();
        final int type = in.readUnsignedShort();
        final long cookie = in.readLong();
        final int length = in.readInt();
        if (length < 0 || length > (64 << 20))
        {
            throw new AssertionError("structured chunk of " + Integer.toUnsignedString(length) + " bytes");
        }
        final byte[] data = new byte[length];
        in.readFully(data);
        return new Chunk(flags, type, cookie, data);
    }

    /**
     * Whether the server has closed the connection: EOF (or a reset) within the socket timeout. Whatever it
     * sent before closing is skipped up to {@code tolerated} bytes; more than that means it went on talking.
     */
    String awaitClosed(final int tolerated) throws IOException
    {
        int seen = 0;
        final byte[] buf = new byte[4096];
        final long deadline = System.nanoTime() + 5_000_000_000L;
        while (System.nanoTime() < deadline)
        {
            final int n;
            try
            {
                n = in.read(buf);
            }
            catch (final SocketTimeoutException e)
            {
                return "still open after 5 s (" + seen + " bytes received)";
            }
            catch (final IOException e)
            {
                return null; // reset: closed
            }
            if (n < 0)
            {
                return null;
            }
            seen += n;
            if (seen > tolerated)
            {
                return "the server kept talking: " + seen + " bytes received, first: " + hex(buf, Math.min(n, 32));
            }
        }
        return "still open after 5 s";
    }

    static String hex(final byte[] b, final int n)
    {
        final StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++)
        {
            sb.append(String.format("%02x", b[i] & 0xff));
        }
        return sb.toString();
    }

    @Override
    public void close() throws IOException
    {
        socket.close();
    }

    record OptionReply(int option, int type, byte[] data)
    {
        @Override
        public String toString()
        {
            return "OptionReply[option=" + option + ", type=0x" + Integer.toHexString(type) + ", data=\""
                + new String(data, StandardCharsets.UTF_8).replaceAll("[^\\x20-\\x7e]", ".") + "\"]";
        }
    }

    record Chunk(int flags, int type, long cookie, byte[] data)
    {
        /** The errno of an error chunk. */
        int errno()
        {
            return java.nio.ByteBuffer.wrap(data).getInt();
        }

        @Override
        public String toString()
        {
            return "Chunk[flags=" + flags + ", type=0x" + Integer.toHexString(type) + ", cookie=" + cookie
                + ", " + data.length + " bytes]";
        }
    }
}
