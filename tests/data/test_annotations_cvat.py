"""CVAT for video 1.1 exports read as CVAT writes them: tracks of per-frame shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fcnseg.cli.main import main
from fcnseg.data import build_dataset
from fcnseg.data.annotations import ImportOptions, import_annotations

# As CVAT's "CVAT for video 1.1" export writes a 3-frame task (64×48): the car track first in
# the file but drawn over the road (z_order 1 over 0); the car's box is a keyframe on frame 0,
# interpolated (keyframe="0") and moved on frame 1, and outside from frame 2; the road leaves
# on frame 2 too, so frame 2 holds nothing; a standalone mask shape is a track of one frame
# (its finishing shape outside).
VIDEO_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task>
      <id>7</id><name>street</name><size>3</size><mode>interpolation</mode><overlap>5</overlap>
      <subset>default</subset><start_frame>0</start_frame><stop_frame>2</stop_frame>
      <frame_filter></frame_filter>
      <segments><segment><id>7</id><start>0</start><stop>2</stop></segment></segments>
      <labels>
        <label><name>car</name><color>#ff0000</color><type>any</type><attributes/></label>
        <label><name>road</name><color>#808080</color><type>any</type><attributes/></label>
      </labels>
      <original_size><width>64</width><height>48</height></original_size>
    </task>
    <source>street.mp4</source>
  </meta>
  <track id="0" label="car" source="manual">
    <box frame="0" keyframe="1" outside="0" occluded="0" xtl="5.00" ytl="5.00" xbr="20.00"
      ybr="20.00" z_order="1"></box>
    <box frame="1" keyframe="0" outside="0" occluded="0" xtl="10.00" ytl="5.00" xbr="25.00"
      ybr="20.00" z_order="1"></box>
    <box frame="2" keyframe="1" outside="1" occluded="0" xtl="10.00" ytl="5.00" xbr="25.00"
      ybr="20.00" z_order="1"></box>
  </track>
  <track id="1" label="road" source="manual">
    <polygon frame="0" keyframe="1" outside="0" occluded="0"
      points="0.00,15.00;64.00,15.00;64.00,48.00;0.00,48.00" z_order="0"></polygon>
    <polygon frame="1" keyframe="0" outside="0" occluded="0"
      points="0.00,15.00;64.00,15.00;64.00,48.00;0.00,48.00" z_order="0"></polygon>
    <polygon frame="2" keyframe="1" outside="1" occluded="0"
      points="0.00,15.00;64.00,15.00;64.00,48.00;0.00,48.00" z_order="0"></polygon>
  </track>
  <track id="2" label="car" source="manual">
    <mask frame="1" keyframe="1" outside="0" occluded="0" rle="2, 2, 2, 2" left="40" top="2"
      width="4" height="2" z_order="2"></mask>
    <mask frame="2" keyframe="1" outside="1" occluded="0" rle="2, 2, 2, 2" left="40" top="2"
      width="4" height="2" z_order="2"></mask>
  </track>
</annotations>
"""


def video_export(tmp_path: Path, xml: str = VIDEO_XML, frames: int = 3) -> Path:
    """A CVAT for video export folder, its frames saved as CVAT saves them."""
    src = tmp_path / "street"
    (src / "images").mkdir(parents=True)
    (src / "annotations.xml").write_text(xml)
    for k in range(frames):
        Image.fromarray(np.full((48, 64, 3), 15 * k, np.uint8)).save(
            src / "images" / f"frame_{k:06d}.PNG")
    return src


def read_mask(out: Path, stem: str) -> np.ndarray:
    return np.asarray(Image.open(out / "masks" / f"{stem}.png"))


def test_video_tracks_become_each_frames_mask(tmp_path: Path) -> None:
    src = video_export(tmp_path)
    report = import_annotations("cvat", src, tmp_path / "out")
    assert report.classes == ["_background_", "car", "road"]
    assert report.written == ["street__frame_000000", "street__frame_000001"]
    first = read_mask(tmp_path / "out", "street__frame_000000")
    assert (first[5:20, 5:20] == 1).all() and first[10, 20] == 0 and first[4, 10] == 0
    assert (first[15:, 20:] == 2).all() and (first[15:, :5] == 2).all()
    second = read_mask(tmp_path / "out", "street__frame_000001")
    assert (second[5:20, 10:25] == 1).all() and (second[10, 5:10] == 0).all()  # box moved
    assert (second[2:4, 42:44] == 1).all() and second[2, 41] == 0  # the standalone mask
    assert (tmp_path / "out" / "images" / "street__frame_000000.png").is_file()


def test_video_z_order_draws_a_track_earlier_in_the_file_on_top(tmp_path: Path) -> None:
    src = video_export(tmp_path)
    import_annotations("cvat", src, tmp_path / "out")
    assert (read_mask(tmp_path / "out", "street__frame_000000")[15:20, 5:20] == 1).all()
    flat = video_export(tmp_path / "flat", VIDEO_XML.replace('z_order="1"', 'z_order="0"'))
    import_annotations("cvat", flat, tmp_path / "flat_out")
    assert (read_mask(tmp_path / "flat_out", "street__frame_000000")[15:20, 5:20] == 2).all()


def test_video_frame_whose_tracks_are_all_outside_follows_the_empty_image_rule(
        tmp_path: Path) -> None:
    src = video_export(tmp_path)
    report = import_annotations("cvat", src, tmp_path / "out")
    assert "street__frame_000002" not in report.written
    assert report.unannotated == [src / "images" / "frame_000002.PNG"]
    report = import_annotations("cvat", src, tmp_path / "bg",
                                ImportOptions(empty_as_background=True))
    assert "street__frame_000002" in report.background
    assert not read_mask(tmp_path / "bg", "street__frame_000002").any()


def test_video_export_without_its_frames_is_one_line_saying_what_to_do(
        tmp_path: Path, capsys) -> None:
    src = video_export(tmp_path, frames=0)
    out = tmp_path / "out"
    assert main(["import", "cvat", str(src / "annotations.xml"), "--out", str(out)]) != 0
    captured = capsys.readouterr()
    [line] = [ln for ln in (captured.out + captured.err).splitlines() if ln.strip()]
    assert "a CVAT for video export without its frames" in line
    assert "frame_%06d.png" in line and "ffmpeg -i street.mp4" in line
    assert "Save images" in line and not out.exists()


def test_video_frames_are_found_with_the_images_option(tmp_path: Path) -> None:
    src = video_export(tmp_path)
    (src / "images").rename(tmp_path / "extracted")
    report = import_annotations("cvat", src, tmp_path / "out",
                                ImportOptions(images=tmp_path / "extracted"))
    assert report.written == ["street__frame_000000", "street__frame_000001"]
    assert not report.errors


def test_video_frame_of_another_size_than_the_task_says_is_one_line(tmp_path: Path) -> None:
    src = video_export(tmp_path)
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(src / "images" / "frame_000001.PNG")
    report = import_annotations("cvat", src, tmp_path / "out")
    assert report.written == ["street__frame_000000"]
    assert report.errors == [f"{src / 'annotations.xml'}: frame 1: the annotation is for a "
                             f"64×48 image, but the image is 32×24 (W×H)"]


def test_video_shape_that_cannot_be_drawn_leaves_out_its_frame_only(tmp_path: Path) -> None:
    src = video_export(tmp_path, VIDEO_XML.replace('xtl="10.00"', 'xtl="ten"', 1))
    report = import_annotations("cvat", src, tmp_path / "out")
    assert report.written == ["street__frame_000000"]
    [line] = report.errors
    assert line.startswith(f"{src / 'annotations.xml'}: frame 1 track 0 ('car') box: 'xtl' is "
                           f"'ten', not a number: the shape cannot be drawn")


def test_video_frame_number_that_is_not_one_is_one_line(tmp_path: Path) -> None:
    src = video_export(tmp_path, VIDEO_XML.replace(' frame="1"', ' frame="-1"', 1))
    with pytest.raises(ValueError, match=r"track 0 \('car'\) <box> 'frame' is '-1', not a "
                                         r"whole number"):
        import_annotations("cvat", src, tmp_path / "out")


def test_video_frame_step_and_start_name_the_frames_as_cvat_does(tmp_path: Path) -> None:
    xml = (VIDEO_XML.replace("<start_frame>0</start_frame><stop_frame>2</stop_frame>",
                             "<start_frame>10</start_frame><stop_frame>14</stop_frame>")
           .replace("<frame_filter></frame_filter>", "<frame_filter>step=2</frame_filter>")
           .replace(' frame="0"', ' frame="10"').replace(' frame="1"', ' frame="12"')
           .replace(' frame="2"', ' frame="14"'))
    src = video_export(tmp_path, xml, frames=16)  # frames outside the task are not its own
    report = import_annotations("cvat", src, tmp_path / "out",
                                ImportOptions(empty_as_background=True))
    assert sorted(report.written) == [f"street__frame_{k:06d}" for k in (10, 12, 14)]


def test_video_export_is_a_cvat_dataset(tmp_path: Path) -> None:
    src = video_export(tmp_path)
    ds = build_dataset({"name": "cvat", "root": str(src), "empty_as_background": True})
    assert ds.classes == ("_background_", "car", "road") and len(ds) == 3
    image, label = ds[ds.ids.index("street__frame_000001")]
    assert image.shape[:2] == (48, 64) and label[10, 24] == 1 and label[10, 5] == 0


def test_video_export_imports_a_folder_that_check_data_passes(tmp_path: Path, capsys) -> None:
    src = video_export(tmp_path)
    out = tmp_path / "out"
    assert main(["import", "cvat", str(src), "--out", str(out), "--val-fraction", "0",
                 "--empty-as-background"]) == 0
    capsys.readouterr()
    assert main(["check-data", "--dataset", "folder", "--root", str(out), "--num-workers",
                 "0"]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_video_job_export_holds_the_frames_of_its_segment(tmp_path: Path) -> None:
    xml = (VIDEO_XML.replace("<task>", "<job>").replace("</task>", "</job>")
           .replace("<stop_frame>2</stop_frame>", "<stop_frame>1</stop_frame>"))
    src = video_export(tmp_path, xml)  # the task's third frame saved beside the job's two
    report = import_annotations("cvat", src, tmp_path / "out",
                                ImportOptions(empty_as_background=True))
    assert report.written == ["street__frame_000000", "street__frame_000001"]
    assert not report.unannotated


def test_video_tasks_of_a_project_export_are_refused_in_one_line(tmp_path: Path) -> None:
    xml = (VIDEO_XML.replace("<task>", "<project><tasks><task>")
           .replace("</task>", "</task></tasks></project>")
           .replace('<track id="0" label="car"', '<track id="0" label="car" task_id="7"'))
    src = video_export(tmp_path, xml)
    with pytest.raises(ValueError, match="a CVAT project export of video tasks.*export each "
                                         "task"):
        import_annotations("cvat", src, tmp_path / "out")


def test_video_export_of_nested_entities_is_refused_as_not_valid_xml(tmp_path: Path) -> None:
    entities = "".join(f'<!ENTITY e{k} "{f"&e{k - 1};" * 10}">' for k in range(1, 10))
    bomb = (f'<?xml version="1.0"?><!DOCTYPE annotations [<!ENTITY e0 "lol">{entities}]>'
            f'<annotations><track id="0" label="&e9;"></track></annotations>')
    src = video_export(tmp_path, bomb)
    with pytest.raises(ValueError, match="not valid XML"):
        import_annotations("cvat", src, tmp_path / "out")


def test_video_export_without_any_track_lists_its_frames_to_annotate(tmp_path: Path) -> None:
    xml = VIDEO_XML[:VIDEO_XML.index("  <track")] + "</annotations>\n"
    src = video_export(tmp_path, xml)
    report = import_annotations("cvat", src, tmp_path / "out")
    assert not report.written and len(report.unannotated) == 3


def test_rotated_box_is_drawn_turned_clockwise_about_its_centre(tmp_path: Path) -> None:
    xml = VIDEO_XML.replace('xtl="5.00" ytl="5.00" xbr="20.00"\n      ybr="20.00"',
                            'xtl="10.00" ytl="20.00" xbr="40.00" ybr="24.00" rotation="30.00"')
    src = video_export(tmp_path, xml)
    import_annotations("cvat", src, tmp_path / "out")
    car = read_mask(tmp_path / "out", "street__frame_000000") == 1
    # The centre (25, 22) and 12 pixels along the long side, turned 30° clockwise on screen.
    assert car[22, 25] and car[22 + 6, 25 + 10] and car[22 - 6, 25 - 10]
    assert not car[22 - 6, 25 + 10] and not car[22, 38]


def test_video_frames_without_shapes_are_one_line_however_many(tmp_path: Path, capsys) -> None:
    src = video_export(tmp_path, frames=3)
    for k in range(3, 40):  # the rest of the video, saved with the task's frames
        (src / "images" / f"frame_{k:06d}.PNG").write_bytes(
            (src / "images" / "frame_000000.PNG").read_bytes())
    xml = VIDEO_XML.replace("<stop_frame>2</stop_frame>", "<stop_frame>39</stop_frame>")
    (src / "annotations.xml").write_text(xml)
    assert main(["import", "cvat", str(src), "--out", str(tmp_path / "out")]) == 0
    said = capsys.readouterr().out
    assert "38 image(s) the export lists without any shape left out" in said
    assert "frame_000003" not in said and "no annotations" not in said


def test_images_export_of_a_video_task_finds_its_frames(tmp_path: Path) -> None:
    xml = """<annotations><version>1.1</version><meta><task><mode>interpolation</mode>
      <labels><label><name>car</name></label></labels></task><source>street.mp4</source></meta>
      <image id="1" name="frame_000001" width="64" height="48">
        <box label="car" occluded="0" xtl="10" ytl="5" xbr="25" ybr="20" z_order="0"/>
      </image></annotations>"""
    src = video_export(tmp_path, xml)  # CVAT for images names a video's frames without .PNG
    report = import_annotations("cvat", src, tmp_path / "out")
    assert report.written == ["street__frame_000001"] and not report.errors
    assert read_mask(tmp_path / "out", "street__frame_000001")[10, 24] == 1


def test_skeleton_track_is_counted_as_points_not_refused(tmp_path: Path) -> None:
    skeleton = """<track id="3" label="person" source="manual">
    <skeleton frame="0" keyframe="1" z_order="0">
      <points label="head" keyframe="1" outside="0" occluded="0" points="50.00,10.00"/>
      <points label="foot" keyframe="1" outside="0" occluded="0" points="50.00,30.00"/>
    </skeleton></track></annotations>"""
    src = video_export(tmp_path, VIDEO_XML.replace("</annotations>", skeleton))
    report = import_annotations("cvat", src, tmp_path / "out")
    assert report.written == ["street__frame_000000", "street__frame_000001"]
    assert not report.errors
    assert report.points == {"street__frame_000000": [
        f"{src / 'annotations.xml'}: frame 0 track 3 ('person') skeleton"]}


def test_frames_of_two_videos_share_a_dataset_by_the_videos_names(tmp_path: Path) -> None:
    street = video_export(tmp_path)
    park = video_export(tmp_path / "park", VIDEO_XML.replace("street.mp4", "park.mp4"))
    import_annotations("cvat", street, tmp_path / "out")
    import_annotations("cvat", park, tmp_path / "out")
    assert sorted(p.stem for p in (tmp_path / "out" / "masks").iterdir()) == [
        "park__frame_000000", "park__frame_000001", "street__frame_000000",
        "street__frame_000001"]


def test_frames_of_an_export_that_names_no_video_are_cvats_picture_names(
        tmp_path: Path) -> None:
    src = video_export(tmp_path, VIDEO_XML.replace("<source>street.mp4</source>", ""))
    report = import_annotations("cvat", src, tmp_path / "out")
    assert report.written == ["frame_000000", "frame_000001"]


def _split_lists(out: Path) -> dict[str, list[str]]:
    return {s: (out / f"{s}.txt").read_text().split() for s in ("train", "val")}


def test_frames_of_several_videos_are_split_by_video(tmp_path: Path) -> None:
    said: list[str] = []
    for video in ("street", "park", "bridge", "tunnel"):
        src = video_export(tmp_path / video, VIDEO_XML.replace("street.mp4", f"{video}.mp4"))
        import_annotations("cvat", src, tmp_path / "out", ImportOptions(val_fraction=0.5),
                           report=said.append)
    lists = _split_lists(tmp_path / "out")
    videos = {s: {n.split("__")[0] for n in names} for s, names in lists.items()}
    assert videos["val"] and videos["train"] and not videos["val"] & videos["train"]
    assert said[-1].startswith("frames split by video, every frame of a video on one side")
    assert f"val.txt holds {', '.join(sorted(videos['val']))}," in said[-1]


def test_frames_of_two_videos_hold_one_out_whatever_the_hashes(tmp_path: Path) -> None:
    from fcnseg.data.annotations.val_split import split_names

    names = [f"{v}__frame_{k:06d}" for v in ("clipA", "clipB") for k in range(8)]
    split = split_names(names, 0.01)
    assert len(split.val_videos) == 1 and split.fallback
    assert sorted(split.of.values()) == ["train"] * 8 + ["val"] * 8


def test_the_video_of_a_name_is_what_comes_before_its_frame_number() -> None:
    from fcnseg.data.annotations.val_split import video_of

    names = ("clipA__frame_000012", "frame_000012", "street")
    assert [video_of(n) for n in names] == ["clipA", None, None]


def test_frames_of_one_video_are_split_by_frame_with_a_warning(tmp_path: Path) -> None:
    report = import_annotations("cvat", video_export(tmp_path), tmp_path / "out",
                                ImportOptions(val_fraction=0.5))
    lists = _split_lists(tmp_path / "out")
    assert sorted(lists["train"] + lists["val"]) == report.written
    assert report.warnings == [
        "the frames are of one video (street), so they are split frame by frame: validation "
        "frames neighbour near-identical training frames and score higher than new footage "
        "would; import the frames of more videos to hold out whole videos"]


def test_frames_that_change_split_when_another_video_comes_are_warned_of(tmp_path: Path) -> None:
    from fcnseg.data.annotations.val_split import split_of

    # a video whose two annotated frames the first import splits frame by frame
    video = next(v for v in ("street", "park", "bridge", "tunnel", "canal", "yard")
                 if len({split_of(f"{v}__frame_{k:06d}", 0.5) for k in (0, 1)}) == 2)
    out, options = tmp_path / "out", ImportOptions(val_fraction=0.5)
    import_annotations("cvat", video_export(tmp_path / "a", VIDEO_XML.replace(
        "street.mp4", f"{video}.mp4")), out, options)
    report = import_annotations("cvat", video_export(tmp_path / "b", VIDEO_XML.replace(
        "street.mp4", "other.mp4")), out, options)
    moved = [w for w in report.warnings if "changed split" in w]
    assert len(moved) == 1 and moved[0].startswith(f"{out / 'val.txt'}: 1 image(s) an earlier "
                                                   f"import listed changed split (the first: "
                                                   f"{video}__frame_00000")
    assert "split by whole video" in moved[0] and "\n" not in moved[0]
