from hypothesis import given, settings
from hypothesis import strategies as st

from rag.text.tokens import (
    count_llama31_chat,
    count_tokens,
    encode,
    llama3_encoding,
    render_llama31_chat,
)


def test_known_llama3_ids():
    # Ids from Meta's tokenizer.json: "Hello" 9906, " world" 1917.
    assert encode("Hello world") == [9906, 1917]
    assert llama3_encoding().encode("<|eot_id|>", allowed_special="all") == [128009]
    assert llama3_encoding().n_vocab == 128256


def test_special_token_text_in_documents_counts_as_text():
    assert count_tokens("<|eot_id|>") > 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.text(
            alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            max_size=300,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_chat_count_equals_rendered_template(contents):
    messages = [
        {"role": "system" if i == 0 else "user", "content": c} for i, c in enumerate(contents)
    ]
    rendered = render_llama31_chat(messages)
    # With no special-token lookalikes in content, both ways must agree exactly.
    if "<|" not in "".join(contents):
        direct = len(llama3_encoding().encode(rendered, allowed_special="all"))
        assert count_llama31_chat(messages) == direct
