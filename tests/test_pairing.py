"""Partner selection: each mode picks what docs/method.md section 1 says."""

import pytest
import torch

from solo_scaca.addon.pairing import select_partners


def _codes(rows):
    q = torch.tensor(rows, dtype=torch.float)
    return q / q.sum(dim=1, keepdim=True)


@pytest.mark.parametrize("mode", ["prototype", "nn", "random"])
def test_never_the_same_image_of_the_same_view(mode):
    torch.manual_seed(0)
    for _ in range(20):
        codes = [torch.softmax(torch.randn(6, 4) * 3, dim=1) for _ in range(2)]
        z = [torch.randn(6, 5) for _ in range(2)]
        for view, (partner_view, index) in enumerate(select_partners(mode, codes, z)):
            assert partner_view == view
            assert not torch.any(index == torch.arange(6))


def test_self_picks_the_other_view_of_the_same_image():
    codes = [torch.softmax(torch.randn(5, 3), dim=1) for _ in range(2)]
    partners = select_partners("self", codes)
    assert [v for v, _ in partners] == [1, 0]
    for _, index in partners:
        assert torch.equal(index, torch.arange(5))


def test_prototype_prefers_a_shared_argmax_over_a_higher_similarity():
    # image 0 (argmax 0) is more similar to image 1 (argmax 1) than to image 2 (argmax 0)
    codes = _codes([[0.5, 0.49, 0.01], [0.3, 0.69, 0.01], [0.9, 0.0, 0.1], [0.0, 0.1, 0.9]])
    sim = codes @ codes.t()
    assert sim[0, 1] > sim[0, 2]
    (_, index), = select_partners("prototype", [codes])
    assert index[0] == 2 and index[2] == 0


def test_prototype_takes_the_most_similar_among_those_sharing_the_argmax():
    codes = _codes([[0.9, 0.1, 0.0], [0.6, 0.0, 0.4], [0.8, 0.2, 0.0], [0.0, 1.0, 0.0]])
    (_, index), = select_partners("prototype", [codes])
    assert index[0] == 2  # both 1 and 2 share argmax 0; 2 is the more similar


def test_prototype_without_a_shared_argmax_takes_the_highest_code_similarity():
    codes = _codes([[0.7, 0.3, 0.0], [0.2, 0.8, 0.0], [0.0, 0.1, 0.9]])
    (_, index), = select_partners("prototype", [codes])
    sim = (codes @ codes.t()).fill_diagonal_(-1)
    assert torch.equal(index, sim.argmax(dim=1))
    assert index[0] == 1


def test_nn_picks_the_nearest_by_cosine():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [10.0, 1.0], [-1.0, 0.2]])
    codes = [torch.full((4, 3), 1 / 3)]
    (_, index), = select_partners("nn", codes, [z])
    assert index.tolist() == [2, 3, 0, 1]


def test_random_covers_every_other_image():
    torch.manual_seed(0)
    codes = [torch.full((4, 2), 0.5)]
    seen = set()
    for _ in range(200):
        (_, index), = select_partners("random", codes)
        seen.add(int(index[0]))
    assert seen == {1, 2, 3}


def test_bad_requests_fail_clearly():
    codes = [torch.full((1, 3), 1 / 3)] * 2
    with pytest.raises(ValueError, match="at least 2 images"):
        select_partners("prototype", codes)
    with pytest.raises(ValueError, match="ca_pairing='foo'.*prototype"):
        select_partners("foo", codes)
