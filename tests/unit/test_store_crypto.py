"""Token encryption: AES-GCM round trip, tamper and swap detection, key sources, wrong keys."""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

import pytest

from orchestrator.errors import StoreCorruptError, StoreKeyError, StorePermissionError
from orchestrator.secret import Secret
from orchestrator.store.crypto import KEY_FILENAME, KeySource, TokenCipher, open_cipher
from orchestrator.store.db import Database

SOURCE = KeySource("test key", from_environment=False)


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher(os.urandom(32), SOURCE)


def test_round_trip(cipher: TokenCipher) -> None:
    """A sealed value opens to the same value for the same user and column."""
    blob = cipher.seal(Secret("act.abc"), open_id="u1", purpose="access")
    assert cipher.open(blob, open_id="u1", purpose="access").reveal() == "act.abc"
    assert b"act.abc" not in blob


def test_same_value_seals_differently_each_time(cipher: TokenCipher) -> None:
    """A fresh nonce per value: equal tokens do not give equal blobs."""
    one = cipher.seal(Secret("same"), open_id="u1", purpose="access")
    two = cipher.seal(Secret("same"), open_id="u1", purpose="access")
    assert one != two
    assert one[1:13] != two[1:13]


def test_tampered_value_is_refused(cipher: TokenCipher) -> None:
    """Flipping one bit of a stored value makes it fail its integrity check."""
    blob = bytearray(cipher.seal(Secret("rft.xyz"), open_id="u1", purpose="refresh"))
    blob[-5] ^= 0x01
    with pytest.raises(StoreCorruptError, match="integrity check") as caught:
        cipher.open(bytes(blob), open_id="u1", purpose="refresh")
    assert "auth remove u1" in (caught.value.hint or "")


def test_value_moved_to_another_user_is_refused(cipher: TokenCipher) -> None:
    """A token copied into another user's row does not open there."""
    blob = cipher.seal(Secret("act.abc"), open_id="u1", purpose="access")
    with pytest.raises(StoreCorruptError):
        cipher.open(blob, open_id="u2", purpose="access")


def test_value_moved_to_another_column_is_refused(cipher: TokenCipher) -> None:
    """A refresh token copied into the access column does not open there."""
    blob = cipher.seal(Secret("rft.xyz"), open_id="u1", purpose="refresh")
    with pytest.raises(StoreCorruptError):
        cipher.open(blob, open_id="u1", purpose="access")


def test_value_from_another_key_is_refused(cipher: TokenCipher) -> None:
    """A value sealed with another key does not open."""
    other = TokenCipher(os.urandom(32), SOURCE)
    blob = other.seal(Secret("act.abc"), open_id="u1", purpose="access")
    with pytest.raises(StoreCorruptError):
        cipher.open(blob, open_id="u1", purpose="access")


def test_truncated_value_is_refused(cipher: TokenCipher) -> None:
    """A blob too short to hold a nonce and tag is reported, not an IndexError."""
    with pytest.raises(StoreCorruptError):
        cipher.open(b"\x01abc", open_id="u1", purpose="access")


def test_cipher_repr_hides_the_key(cipher: TokenCipher) -> None:
    """repr names the key's source only."""
    assert "hidden" in repr(cipher)
    assert "test key" in repr(cipher)


def test_first_use_creates_a_private_key_file(home: Path) -> None:
    """Without ORCHESTRATOR_TOKEN_KEY a 0600 token.key (base64 of 32 bytes) is made once."""
    with Database.open(home) as db:
        cipher = open_cipher(db, env_key=None)
    key_path = home / KEY_FILENAME
    assert cipher.source.created
    if os.name == "posix":
        assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_path.read_text())) == 32
    first = key_path.read_bytes()
    with Database.open(home) as db:
        again = open_cipher(db, env_key=None)
    assert not again.source.created
    assert key_path.read_bytes() == first


def test_environment_key_is_used_and_no_file_is_made(home: Path) -> None:
    """With ORCHESTRATOR_TOKEN_KEY set, no key file appears and the env key opens the store."""
    key = os.urandom(32)
    with Database.open(home) as db:
        sealed = open_cipher(db, env_key=key).seal(Secret("t"), open_id="u", purpose="access")
    assert not (home / KEY_FILENAME).exists()
    with Database.open(home) as db:
        assert open_cipher(db, env_key=key).open(sealed, open_id="u", purpose="access").reveal()


def test_wrong_environment_key_is_detected_at_open(home: Path) -> None:
    """A changed ORCHESTRATOR_TOKEN_KEY fails at open with the likely cause named."""
    with Database.open(home) as db:
        open_cipher(db, env_key=os.urandom(32))
    with Database.open(home) as db, pytest.raises(StoreKeyError) as caught:
        open_cipher(db, env_key=os.urandom(32))
    message = str(caught.value)
    assert "ORCHESTRATOR_TOKEN_KEY" in message
    assert "was ORCHESTRATOR_TOKEN_KEY changed?" in message
    assert str(home / "state.db") in message


def test_replaced_key_file_is_detected_and_kept(home: Path) -> None:
    """A token.key that is not the one the store was made with is refused and not rewritten."""
    with Database.open(home) as db:
        open_cipher(db, env_key=None)
    key_path = home / KEY_FILENAME
    key_path.write_text(base64.b64encode(os.urandom(32)).decode())
    replaced = key_path.read_bytes()
    with Database.open(home) as db, pytest.raises(StoreKeyError, match="does not open"):
        open_cipher(db, env_key=None)
    assert key_path.read_bytes() == replaced


def test_missing_key_file_is_not_silently_replaced(home: Path) -> None:
    """If token.key vanished from a store with tokens, no new key is made: clear error."""
    with Database.open(home) as db:
        open_cipher(db, env_key=None)
    (home / KEY_FILENAME).unlink()
    with Database.open(home) as db, pytest.raises(StoreKeyError, match="no key is available"):
        open_cipher(db, env_key=None)
    assert not (home / KEY_FILENAME).exists()


def test_malformed_key_file_is_reported(home: Path) -> None:
    """A key file that is not base64 of 32 bytes gives a clear error."""
    home.mkdir(mode=0o700)
    key_path = home / KEY_FILENAME
    key_path.write_text("not a key")
    os.chmod(key_path, 0o600)
    with Database.open(home) as db, pytest.raises(StoreKeyError, match="malformed"):
        open_cipher(db, env_key=None)


@pytest.mark.skipif(os.name != "posix", reason="mode bits are POSIX")
def test_key_file_readable_by_others_is_refused(home: Path) -> None:
    """A token.key others can read is refused with the chmod that fixes it."""
    with Database.open(home) as db:
        open_cipher(db, env_key=None)
    os.chmod(home / KEY_FILENAME, 0o644)
    with Database.open(home) as db, pytest.raises(StorePermissionError) as caught:
        open_cipher(db, env_key=None)
    assert caught.value.hint == f"chmod 600 {home / KEY_FILENAME}"


def test_concurrent_first_use_agrees_on_one_key(home: Path) -> None:
    """Threads opening a new store at once end with one key that opens everyone's values."""
    with Database.open(home) as db:
        ciphers: list[TokenCipher] = []
        errors: list[BaseException] = []

        def opener() -> None:
            try:
                ciphers.append(open_cipher(db, env_key=None))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=opener) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    blob = ciphers[0].seal(Secret("v"), open_id="u", purpose="access")
    for cipher in ciphers:
        assert cipher.open(blob, open_id="u", purpose="access").reveal() == "v"
    assert [p.name for p in home.iterdir() if p.name.startswith(".")] == []
