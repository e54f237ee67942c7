package io.doppel.watch;

import com.sun.jna.LastErrorException;
import com.sun.jna.Library;
import com.sun.jna.Native;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;

/**
 * Linux inotify on one image file (or a volume group's directory), through JNA's libc binding: the trigger
 * that tells the watcher the file may have changed, so an idle file is never read. Events say only
 * "something changed", not where; the scan finds where. Control plane: one call per wait, not per block.
 */
public final class Inotify implements Closeable
{
    static final int IN_MODIFY = 0x2;
    static final int IN_ATTRIB = 0x4;
    static final int IN_CLOSE_WRITE = 0x8;
    static final int IN_MOVED_FROM = 0x40;
    static final int IN_MOVED_TO = 0x80;
    static final int IN_CREATE = 0x100;
    static final int IN_DELETE = 0x200;
    static final int IN_DELETE_SELF = 0x400;
    static final int IN_MOVE_SELF = 0x800;
    static final int IN_Q_OVERFLOW = 0x4000;
    static final int IN_IGNORED = 0x8000;
    private static final int IN_ONLYDIR = 0x1000000;
    private static final int IN_NONBLOCK = 0x800;
    private static final int IN_CLOEXEC = 0x80000;
    private static final int POLLIN = 1;
    private static final int EAGAIN = 11;
    private static final int EINTR = 4;
    private static final int EVENT_HEADER_BYTES = 16;

    private interface LibC extends Library
    {
        int inotify_init1(int flags) throws LastErrorException;

        int inotify_add_watch(int fd, String path, int mask) throws LastErrorException;

        long read(int fd, byte[] buffer, long count) throws LastErrorException;

        int poll(int[] fds, long count, int timeoutMillis) throws LastErrorException;

        int close(int fd) throws LastErrorException;
    }

    private static final LibC LIBC = load();

    private final int fd;
    private final byte[] buffer = new byte[64 << 10];
    private final int[] pollFd = new int[2];
    /** The file was deleted or renamed away: the mapping still shows the old file, which nobody writes now. */
    private boolean gone;

    private Inotify(final int fd)
    {
        this.fd = fd;
        pollFd[0] = fd;
    }

    private static LibC load()
    {
        try
        {
            return Native.load("c", LibC.class);
        }
        catch (final Throwable t)
        {
            return null;
        }
    }

    /** Watches {@code file} for writes, closes after writing and attribute changes (truncate, utimes). */
    public static Inotify open(final Path file) throws IOException
    {
        return open(file, IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
    }

    /**
     * Watches a volume group's {@code directory} for files that appear (created, moved in, written and
     * closed) or disappear (deleted, moved away); {@link #gone()} turns true when the directory itself goes.
     */
    public static Inotify openDirectory(final Path directory) throws IOException
    {
        return open(directory, IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF
            | IN_MOVE_SELF | IN_ONLYDIR);
    }

    private static Inotify open(final Path file, final int mask) throws IOException
    {
        if (LIBC == null)
        {
            throw new IOException("inotify: JNA could not bind libc (is java.io.tmpdir noexec?)");
        }
        final int fd;
        try
        {
            fd = LIBC.inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        }
        catch (final LastErrorException e)
        {
            throw new IOException("inotify_init1 failed: errno " + e.getErrorCode()
                + " (fs.inotify.max_user_instances reached?)", e);
        }
        try
        {
            LIBC.inotify_add_watch(fd, file.toString(), mask);
        }
        catch (final LastErrorException e)
        {
            LIBC.close(fd);
            throw new IOException(file + ": inotify_add_watch failed: errno " + e.getErrorCode()
                + " (fs.inotify.max_user_watches reached?)", e);
        }
        return new Inotify(fd);
    }

    /** Waits up to {@code millis} for an event; true when one is waiting (read them with {@link #drain}). */
    public boolean await(final long millis)
    {
        pollFd[1] = POLLIN; // events in the low half, revents (cleared) in the high half (little-endian)
        try
        {
            return LIBC.poll(pollFd, 1, (int)Math.min(Integer.MAX_VALUE, Math.max(0, millis))) > 0;
        }
        catch (final LastErrorException e)
        {
            if (e.getErrorCode() == EINTR)
            {
                return false;
            }
            throw e;
        }
    }

    /**
     * Reads every waiting event without blocking; returns how many there were (a queue overflow counts
     * as one: it means "changed", which is all the watcher needs).
     */
    public int drain()
    {
        int events = 0;
        while (true)
        {
            final long n;
            try
            {
                n = LIBC.read(fd, buffer, buffer.length);
            }
            catch (final LastErrorException e)
            {
                if (e.getErrorCode() == EINTR)
                {
                    continue;
                }
                if (e.getErrorCode() == EAGAIN)
                {
                    return events;
                }
                throw e;
            }
            if (n <= 0)
            {
                return events;
            }
            final ByteBuffer b = ByteBuffer.wrap(buffer, 0, (int)n).order(ByteOrder.nativeOrder());
            int at = 0;
            while (at + EVENT_HEADER_BYTES <= n)
            {
                final int mask = b.getInt(at + 4);
                final int nameLength = b.getInt(at + 12);
                if ((mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) != 0)
                {
                    gone = true;
                }
                events++;
                at += EVENT_HEADER_BYTES + nameLength;
            }
        }
    }

    /** True once the watched file was deleted or renamed away (the watch is then over). */
    public boolean gone()
    {
        return gone;
    }

    @Override
    public void close()
    {
        try
        {
            LIBC.close(fd);
        }
        catch (final LastErrorException ignore)
        {
            // the descriptor is gone either way
        }
    }
}
