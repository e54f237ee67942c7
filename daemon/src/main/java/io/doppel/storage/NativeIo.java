package io.doppel.storage;

import com.sun.jna.Library;
import com.sun.jna.LastErrorException;
import com.sun.jna.Native;
import com.sun.jna.ptr.LongByReference;

import java.io.IOException;
import java.nio.file.Path;

/**
 * The few Linux calls the JDK does not offer, reached through JNA's direct libc binding:
 * a block device's size ({@code ioctl(BLKGETSIZE64)}) and hole punching ({@code fallocate}).
 * Control-plane use only (open, size, the rare zero range); never per block on the hot path.
 */
public final class NativeIo
{
    /** {@code _IOR(0x12, 114, size_t)} from linux/fs.h. */
    static final long BLKGETSIZE64 = 0x80081272L;
    static final int O_RDONLY = 0;
    static final int O_RDWR = 2;
    static final int O_CLOEXEC = 0x80000;
    static final int FALLOC_FL_KEEP_SIZE = 0x01;
    static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    static final int SEEK_DATA = 3;
    static final int SEEK_HOLE = 4;
    /** Extents walked at most by {@link #allocatedBytes}: it only decorates an error message. */
    private static final int MAX_EXTENTS = 1 << 20;

    private interface LibC extends Library
    {
        int open(String path, int flags) throws LastErrorException;

        int close(int fd) throws LastErrorException;

        int ioctl(int fd, long request, LongByReference value) throws LastErrorException;

        int fallocate(int fd, int mode, long offset, long length) throws LastErrorException;

        long lseek(int fd, long offset, int whence) throws LastErrorException;

        int getpagesize();
    }

    private static final LibC LIBC = load();

    private NativeIo()
    {
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

    /**
     * pwrite(2) by JNA direct mapping (a plain native call, no proxy), the one native call on the write
     * path; {@link #PWRITE} is false where it could not be bound.
     */
    static final class Direct
    {
        static final boolean PWRITE = register();

        private Direct()
        {
        }

        private static boolean register()
        {
            try
            {
                Native.register(Direct.class, "c");
                return true;
            }
            catch (final Throwable t)
            {
                return false;
            }
        }

        static native long pwrite(int fd, long buf, long count, long offset) throws LastErrorException;

        static native int madvise(long addr, long length, int advice) throws LastErrorException;
    }

    /** {@code MADV_POPULATE_WRITE} (Linux 5.14+): fault pages in writable, an error instead of a SIGBUS. */
    static final int MADV_POPULATE_WRITE = 23;
    static final int EINVAL = 22;

    /** The system's page size (4096 when libc cannot say). */
    static int pageSize()
    {
        try
        {
            return LIBC == null ? 4096 : LIBC.getpagesize();
        }
        catch (final RuntimeException | UnsatisfiedLinkError e)
        {
            return 4096;
        }
    }

    /** Opens {@code path} read-write for pwrite (close-on-exec); -1 when libc is not bound. */
    static int openForWrite(final Path path) throws IOException
    {
        if (LIBC == null || !Direct.PWRITE)
        {
            return -1;
        }
        try
        {
            return LIBC.open(path.toString(), O_RDWR | O_CLOEXEC);
        }
        catch (final LastErrorException e)
        {
            throw new IOException(path + ": open for writing failed: " + e.getMessage(), e);
        }
    }

    /** Closes a descriptor from {@link #openForWrite}. */
    static void close(final int fd)
    {
        closeQuietly(fd);
    }

    /** True when libc could be bound (JNA's native part unpacked and loaded). */
    public static boolean available()
    {
        return LIBC != null;
    }

    /** Size in bytes of a block device, from {@code ioctl(BLKGETSIZE64)}. */
    public static long blockDeviceSize(final Path device) throws IOException
    {
        requireLibc("read the size of block device " + device);
        int fd = -1;
        try
        {
            fd = LIBC.open(device.toString(), O_RDONLY);
            final LongByReference size = new LongByReference();
            LIBC.ioctl(fd, BLKGETSIZE64, size);
            return size.getValue();
        }
        catch (final LastErrorException e)
        {
            throw new IOException(device + ": ioctl(BLKGETSIZE64) failed: errno " + e.getErrorCode(), e);
        }
        finally
        {
            closeQuietly(fd);
        }
    }

    /**
     * Deallocates {@code [offset, offset+length)} of a regular file, keeping its size: the range reads
     * as zeros afterwards. Returns false when the file system does not support it (the caller writes zeros).
     */
    public static boolean punchHole(final Path file, final long offset, final long length)
    {
        if (LIBC == null)
        {
            return false;
        }
        int fd = -1;
        try
        {
            fd = LIBC.open(file.toString(), O_RDWR);
            LIBC.fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
            return true;
        }
        catch (final LastErrorException e)
        {
            return false;
        }
        finally
        {
            closeQuietly(fd);
        }
    }

    /**
     * Bytes of {@code file} that hold data (SEEK_DATA/SEEK_HOLE), for telling an operator how much more
     * room a sparse image needs. The file's length when the file system does not say; -1 when unknown.
     */
    public static long allocatedBytes(final Path file)
    {
        if (LIBC == null)
        {
            return -1;
        }
        int fd = -1;
        try
        {
            fd = LIBC.open(file.toString(), O_RDONLY | O_CLOEXEC);
            long total = 0;
            long at = 0;
            for (int i = 0; i < MAX_EXTENTS; i++)
            {
                final long data;
                try
                {
                    data = LIBC.lseek(fd, at, SEEK_DATA);
                }
                catch (final LastErrorException e)
                {
                    return total; // ENXIO: no data after at
                }
                final long hole = LIBC.lseek(fd, data, SEEK_HOLE);
                total += hole - data;
                at = hole;
            }
            return total;
        }
        catch (final LastErrorException e)
        {
            return -1;
        }
        finally
        {
            closeQuietly(fd);
        }
    }

    /** Opens {@code path} read-only (close-on-exec) for {@link #seekData}/{@link #seekHole}; -1 without libc. */
    public static int openReadOnly(final Path path) throws IOException
    {
        if (LIBC == null)
        {
            return -1;
        }
        try
        {
            return LIBC.open(path.toString(), O_RDONLY | O_CLOEXEC);
        }
        catch (final LastErrorException e)
        {
            throw new IOException(path + ": open for reading failed: errno " + e.getErrorCode(), e);
        }
    }

    /**
     * The first offset at or after {@code at} that holds data ({@code lseek(SEEK_DATA)}); -1 when only a hole
     * follows. A file system without hole support reports everything as data; so does fd -1.
     */
    public static long seekData(final int fd, final long at)
    {
        if (fd < 0)
        {
            return at;
        }
        try
        {
            return LIBC.lseek(fd, at, SEEK_DATA);
        }
        catch (final LastErrorException e)
        {
            return e.getErrorCode() == ENXIO ? -1 : at;
        }
    }

    /** The first hole at or after {@code at} ({@code lseek(SEEK_HOLE)}; the end of the file counts as one). */
    public static long seekHole(final int fd, final long at, final long size)
    {
        if (fd < 0)
        {
            return size;
        }
        try
        {
            return LIBC.lseek(fd, at, SEEK_HOLE);
        }
        catch (final LastErrorException e)
        {
            return size;
        }
    }

    /** Closes a descriptor from {@link #openReadOnly}. */
    public static void closeDescriptor(final int fd)
    {
        closeQuietly(fd);
    }

    static final int ENXIO = 6;

    private static void closeQuietly(final int fd)
    {
        if (fd >= 0)
        {
            try
            {
                LIBC.close(fd);
            }
            catch (final LastErrorException ignore)
            {
                // nothing useful to do: the descriptor is gone either way
            }
        }
    }

    private static void requireLibc(final String what) throws IOException
    {
        if (LIBC == null)
        {
            throw new IOException("cannot " + what + ": JNA could not bind libc (is java.io.tmpdir noexec?)");
        }
    }
}
