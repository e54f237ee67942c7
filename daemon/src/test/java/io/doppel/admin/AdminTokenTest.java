package io.doppel.admin;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The admin token file: made on first start with a random 256-bit token and mode 0600 (created with it, so
 * never readable by others); read again as it is on the next start; refused when group or others may read
 * or write it, when another user owns it, or when it holds no usable token, each with a message naming the
 * file and what to do.
 */
class AdminTokenTest
{
    @TempDir
    Path dir;

    @Test
    void firstStartMakesAPrivateRandomTokenAndTheNextReadsIt() throws Exception
    {
        final Path file = dir.resolve("sub/admin.token");
        final AdminToken made = AdminToken.loadOrCreate(file);
        assertThat(PosixFilePermissions.toString(Files.getPosixFilePermissions(file))).isEqualTo("rw-------");
        assertThat(Files.getOwner(file).getName()).isEqualTo(System.getProperty("user.name"));
        assertThat(made.value()).matches("[0-9a-f]{64}");
        assertThat(Files.readString(file)).isEqualTo(made.value() + "\n");
        assertThat(made.file()).isEqualTo(file);

        final AdminToken again = AdminToken.loadOrCreate(file);
        assertThat(again.value()).as("the next start keeps the token").isEqualTo(made.value());
        assertThat(AdminToken.loadOrCreate(dir.resolve("other.token")).value()).as("random")
            .isNotEqualTo(made.value());

        assertThat(made.matches(made.value())).isTrue();
        assertThat(made.matches(made.value().substring(0, 63) + "x")).isFalse();
        assertThat(made.matches(made.value() + "0")).isFalse();
        assertThat(made.matches("")).isFalse();
        assertThat(made.matches(null)).isFalse();
    }

    @Test
    void aFileOthersCanReadOrWriteRefusesTheStart() throws Exception
    {
        final Path file = dir.resolve("admin.token");
        Files.writeString(file, "0123456789abcdef0123456789abcdef0123456789abcdef\n");
        for (final String mode : new String[] {"rw-r--r--", "rw-r-----", "rw----r--", "rw--w----"})
        {
            Files.setPosixFilePermissions(file, PosixFilePermissions.fromString(mode));
            assertThatThrownBy(() -> AdminToken.loadOrCreate(file)).as(mode)
                .isInstanceOf(AdminToken.UnsafeTokenFileException.class)
                .hasMessageContaining(file + " ([node].admin-token-file): mode ")
                .hasMessageContaining("(" + mode + ")")
                .hasMessageContaining("chmod 600 " + file);
        }
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-r--r--"));
        assertThatThrownBy(() -> AdminToken.loadOrCreate(file)).hasMessageContaining("mode 0644");
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("r--------"));
        assertThat(AdminToken.loadOrCreate(file).value()).as("0400 is fine too")
            .isEqualTo("0123456789abcdef0123456789abcdef0123456789abcdef");
    }

    @Test
    void anEmptyOrShortOrBinaryTokenIsRefused() throws Exception
    {
        final Path file = dir.resolve("admin.token");
        Files.createFile(file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        assertThatThrownBy(() -> AdminToken.loadOrCreate(file)).isInstanceOf(AdminToken.UnsafeTokenFileException.class)
            .hasMessageContaining(file + " ([node].admin-token-file): the file is empty")
            .hasMessageContaining("delete the file");
        Files.writeString(file, "secret\n");
        assertThatThrownBy(() -> AdminToken.loadOrCreate(file))
            .hasMessageContaining("the token is 6 characters; expected at least 32");
        Files.writeString(file, "0123456789abcdef 0123456789abcdef\n");
        assertThatThrownBy(() -> AdminToken.loadOrCreate(file))
            .hasMessageContaining("a character other than printable ASCII (at 16)");
    }

    @Test
    void aFileAnotherUserOwnsIsRefused() throws Exception
    {
        Assumptions.assumeTrue("root".equals(System.getProperty("user.name")),
            "skipped: giving a file to another user needs root (CI runs as root)");
        final Path file = dir.resolve("admin.token");
        Files.writeString(file, "0123456789abcdef0123456789abcdef0123456789abcdef\n");
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
        Files.setOwner(file, file.getFileSystem().getUserPrincipalLookupService().lookupPrincipalByName("nobody"));
        assertThatThrownBy(() -> AdminToken.loadOrCreate(file)).isInstanceOf(AdminToken.UnsafeTokenFileException.class)
            .hasMessageContaining("owned by user nobody").hasMessageContaining("chown root " + file);
    }
}
