-- adit 0009: the first characters of each key (its type prefix and 8 of its
-- 40 random characters), stored at creation so that `adit keys list` lets
-- someone holding only the key find its id. They are not a secret: the
-- other 32 random characters (192 bits) are. Keys made before this
-- migration have none (NULL); `adit keys revoke <key>` finds every key by
-- its hash.
ALTER TABLE collector_keys ADD COLUMN key_prefix text
    CHECK (key_prefix IS NULL OR char_length(key_prefix) <= 16);
