package io.doppel.daemon;

import com.sun.jna.LastErrorException;
import com.sun.jna.Library;
import com.sun.jna.Native;

import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * systemd's readiness and watchdog protocol, without libsystemd: datagrams such as {@code READY=1},
 * {@code STATUS=…} and {@code WATCHDOG=1} sent to the Unix socket named by {@code NOTIFY_SOCKET}
 * (a path, or {@code @name} for the abstract namespace), through JNA's libc binding.
 *
 * <p>Why: with {@code Type=notify} systemd starts units that depend on doppel only once every volume is
 * open and listening, shows the one-line {@code STATUS} in {@code systemctl status}, and restarts a
 * daemon that stops sending {@code WATCHDOG=1}. Control plane only; a failed send is logged once and
 * never stops the daemon.
 */
public final class SdNotify implements AutoCloseable
{
    static final int AF_UNIX = 1;
    static final int SOCK_DGRAM = 2;
    static final int SOCK_CLOEXEC = 0x80000;
    static final int MSG_NOSIGNAL = 0x4000;
    /** {@code sizeof(struct sockaddr_un)}: 2 bytes of family, 108 of path. */
    static final int SOCKADDR_UN_BYTES = 110;

    interface LibC extends Library
    {
        int socket(int domain, int type, int protocol) throws LastErrorException;

        long sendto(int fd, byte[] buf, long len, int flags, byte[] addr, int addrlen) throws LastErrorException;

        int bind(int fd, byte[] addr, int addrlen) throws LastErrorException;

        long recv(int fd, byte[] buf, long len, int flags) throws LastErrorException;

        int close(int fd) throws LastErrorException;
    }

    static final LibC LIBC = Native.load("c", LibC.class);

    private final String socketName;
    private final byte[] address;
    private final int addressLength;
    private final int fd;

    private SdNotify(final String socketName)
    {
        this.socketName = socketName;
        this.address = new byte[SOCKADDR_UN_BYTES];
        this.addressLength = sockaddr(socketName, address);
        this.fd = LIBC.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    }

    /** The notifier for this process's environment, or null when systemd did not ask for notifications. */
    public static SdNotify fromEnvironment(final Map<String, String> env)
    {
        final String name = env.get("NOTIFY_SOCKET");
        if (name == null || name.isEmpty())
        {
            return null;
        }
        if (!name.startsWith("/") && !name.startsWith("@"))
        {
            throw new IllegalArgumentException("NOTIFY_SOCKET=" + name + ": expected an absolute path or @abstract-name");
        }
        return new SdNotify(name);
    }

    /**
     * How often to send {@code WATCHDOG=1}: half of {@code WATCHDOG_USEC}, when it is set and
     * {@code WATCHDOG_PID} is unset or this process; else 0 (no watchdog).
     */
    public static long watchdogIntervalMillis(final Map<String, String> env)
    {
        final String usec = env.get("WATCHDOG_USEC");
        final String pid = env.get("WATCHDOG_PID");
        if (usec == null || (pid != null && !pid.equals(Long.toString(ProcessHandle.current().pid()))))
        {
            return 0;
        }
        try
        {
            return Math.max(1, Long.parseLong(usec.trim()) / 2_000);
        }
        catch (final NumberFormatException e)
        {
            return 0;
        }
    }

    /** Fills {@code addr} as a {@code struct sockaddr_un} for {@code name}; returns the length to pass. */
    static int sockaddr(final String name, final byte[] addr)
    {
        final byte[] path = name.getBytes(StandardCharsets.UTF_8);
        if (path.length >= SOCKADDR_UN_BYTES - 2)
        {
            throw new IllegalArgumentException("socket name " + name + " is longer than 107 bytes");
        }
        addr[0] = (byte)AF_UNIX; // sa_family_t in host order (little-endian here)
        addr[1] = 0;
        System.arraycopy(path, 0, addr, 2, path.length);
        if (path[0] == '@')
        {
            addr[2] = 0; // abstract namespace: a leading NUL, and the length counts exactly the name
            return 2 + path.length;
        }
        return 2 + path.length + 1;
    }

    /** Sends one notification ({@code KEY=VALUE} lines); false (and nothing else) when it could not be sent. */
    public synchronized boolean send(final String message)
    {
        final byte[] bytes = message.getBytes(StandardCharsets.UTF_8);
        try
        {
            return LIBC.sendto(fd, bytes, bytes.length, MSG_NOSIGNAL, address, addressLength) == bytes.length;
        }
        catch (final LastErrorException e)
        {
            return false;
        }
    }

    public String socketName()
    {
        return socketName;
    }

    @Override
    public void close()
    {
        LIBC.close(fd);
    }
}
